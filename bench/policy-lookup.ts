/**
 * The cost per answer of finding the asking client's policy (policy/clients.ts), beside the
 * cost of deciding the answer itself. Clients are 50 containers with labels and 10 ranges
 * of a policy file; the lookups ask as:
 *   - the default client (no container, no range): the common case without policies
 *   - a container with a label: one Map lookup, then the cache
 *   - an address in a range: longest prefix first, once, then the cache
 *   - a flood of distinct addresses (a container forging its DNS source across its /64):
 *     every lookup misses the cache, which must stay bounded and not slow the rest
 * and a decision (decideResponse of a small allowed answer) for scale.
 *
 *   npx tsx bench/policy-lookup.ts [lookups=1000000] [runs=5]
 */
import { BlockList } from 'node:net';
import { decideResponse, onePolicy } from '../src/pipeline/decision.js';
import { Clients } from '../src/policy/clients.js';
import { Patterns } from '../src/policy/patterns.js';
import { PolicySet } from '../src/policy/policies.js';
import { parsePolicyFile } from '../src/policy/policy-file.js';
import { dnsResponse } from '../test/support/dnstap.js';
import { median, printTable } from './stats.js';

const LOOKUPS = Number(process.argv[2] ?? 1_000_000);
const RUNS = Number(process.argv[3] ?? 5);
const PORTS = [{ protocol: 'tcp' as const, port: 443 }];

const file = parsePolicyFile(
  ['policies:', ...Array.from({ length: 10 }, (_, i) => `  p${i}: {allow: ["*.p${i}.example."], clients: ["10.${i}.0.0/16"]}`)].join('\n'),
  'bench.yaml',
);
const policies = PolicySet.compile(['example.com.'], PORTS, file);
const clients = new Clients(policies);
clients.replaceContainers(
  Array.from({ length: 50 }, (_, i) => ({ id: `c${i}`.padEnd(64, '0'), name: `svc${i}`, addresses: [`172.18.0.${i + 10}`], labels: { 'on-his-name.allow': `svc${i}.example.` } })),
);

function rate(fn: (i: number) => unknown): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) if (fn(i)) sink++;
  const ns = Number(process.hrtime.bigint() - start);
  if (sink < 0) console.log(sink);
  return ns / LOOKUPS;
}

const onePolicyForAll = onePolicy(Patterns.compile(['svc7.example.']));
/** The ranges as this code first had them, node's BlockList per range: what the integer arithmetic replaced. */
const blockLists = Array.from({ length: 10 }, (_, i) => {
  const list = new BlockList();
  list.addSubnet(`10.${i}.0.0`, 16, 'ipv4');
  return list;
});
const response = dnsResponse('svc7.example', [{ type: 'A', name: 'svc7.example', data: '198.51.100.7', ttl: 60 }]);
const rows: Array<[string, () => number]> = [
  ['default client (no container, no range)', () => rate(() => clients.forClient('172.18.200.1'))],
  ['a container with a label', () => rate((i) => clients.forClient(`172.18.0.${(i % 50) + 10}`))],
  ['an address in a range of the file', () => rate((i) => clients.forClient(`10.${i % 10}.3.4`))],
  ['a flood of distinct IPv6 addresses (cache misses)', () => rate((i) => clients.forClient(`fd00:18::${(i % 65536).toString(16)}:${((i >> 16) & 0xffff).toString(16)}`))],
  ['a flood of distinct IPv4 addresses (cache misses)', () => rate((i) => clients.forClient(`172.19.${(i >> 8) & 255}.${i & 255}`))],
  ['the IPv4 flood through BlockList ranges (the first version)', () => rate((i) => blockLists.some((l) => l.check(`172.19.${(i >> 8) & 255}.${i & 255}`, 'ipv4')))],
  ['decideResponse, one policy for all (before policies)', () => rate(() => decideResponse(response, '172.18.0.17', onePolicyForAll))],
  ['decideResponse, the client\'s policy looked up', () => rate(() => decideResponse(response, '172.18.0.17', clients))],
];

const results = rows.map(() => [] as number[]);
for (let run = 0; run < RUNS; run++) rows.forEach(([, measure], r) => results[r]!.push(measure()));
printTable(
  ['lookup', `ns each (median of ${RUNS} × ${LOOKUPS.toLocaleString('en')})`, 'min', 'max'],
  rows.map(([label], r) => [label, ...[median(results[r]!), Math.min(...results[r]!), Math.max(...results[r]!)].map((x) => x.toFixed(0))]),
);
