/**
 * Packet path cost: new TCP connections per second from a "container" through the bridge
 * to the "internet", with on-his-name's per-address ACCEPT rules in DOCKER-USER.
 *
 *   container (192.0.2.10, wrk) ── ohnbr0 ── host: FORWARD → DOCKER-USER ── internet (198.51.100.10:80)
 *
 * The lab (bench/packet-lab.ts, shared with bench/policy-packet-path.ts) is test/lab's
 * firewall lab (DNS never started) with Docker's FORWARD rules added (so conntrack runs in
 * every configuration) and bench/http-server.mjs in place of its web server; the server is
 * pinned to one core, wrk to the other. Each configuration
 * is installed by on-his-name's own Firewall (2 rules per address: ports 80 and 443), then wrk opens
 * one connection per request (`Connection: close`, and the server answers HTTP/1.0 and
 * closes) for SECONDS, RUNS times, the configurations taking turns so that drift on the
 * machine spreads over all of them. The tested destination's port-80 rule is either the
 * last accept rule (allowed last: new rules go to the bottom of the block, above its DROP,
 * so that the block stays in expiry order), so every new connection's SYN walks the whole
 * list, or the first (allowed first). The "tested ACCEPT is rule" column checks which.
 * The ipset backend (`--backend ipset`) is installed by its own IpsetBackend: sync(), then one
 * apply() of every address with a one-hour lifetime. The nftables backend (`--backend
 * nftables`, table inet on-his-name) by its own Firewall with the CLI's long-lived nft, the
 * tested address first; a set has no order, so "first" and "last" are the same row there.
 * Bench-only variants, to compare: the same addresses in a native nftables set, and the
 * per-address rules moved behind one `-i BRIDGE` jump so that packets not from the bridge
 * (replies) skip them.
 *
 * What it guards against: 10,000 per-address rules cost about 97 % of the connection rate
 * here (rows 4 and 5), and a set backend whose lookup grew with its size would show the
 * same slope between its 1, 10,000 and 100,000 rows. (The per-address layout has no
 * 100,000 row: its Firewall cannot install that many here, see bench/RESULTS.md.)
 *
 *   sudo npx tsx bench/packet-path.ts [runs=5] [seconds=4]      (about 8 minutes)
 *
 * VARIANTS=0,4,7 runs only those rows (0 is the baseline the costs are relative to; 11 is
 * ipset with 100,000 addresses, 12-14 nftables with 1, 10,000 and 100,000);
 * CONNECTIONS=32 sets wrk's parallel connections.
 *
 * Needs root, wrk (apt-get install wrk), iptables, ipset, nft, conntrack, taskset.
 */
import { execa } from 'execa';
import { pino } from 'pino';
import { Firewall } from '../src/firewall/firewall.js';
import { iptablesRunner } from '../src/firewall/iptables.js';
import { IpsetBackend } from '../src/firewall/ipset-backend.js';
import { SET_V4 } from '../src/firewall/ipset.js';
import { execIpset } from '../src/firewall/ipset-runner.js';
import { NftablesBackend } from '../src/firewall/nft/backend.js';
import { FAMILY, TABLE } from '../src/firewall/nft/render.js';
import { nftRunner } from '../src/firewall/nft/runner.js';
import { NftTable } from '../src/firewall/nft/table.js';
import { CHAIN, TAG, acceptRule, dropRule, establishedRule, parseOwnedRule } from '../src/firewall/rules.js';
import { BRIDGE, labLayout } from '../test/lab/firewall-lab.js';
import { PORT, PORTS, TESTED, checkTools, chunks, filler, measure, restore, type Variant } from './packet-lab.js';

const RUNS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 4);
const log = pino({ level: 'silent' });

/** on-his-name's own Firewall opens `count` addresses, the tested one last (its rule at the bottom) or first (at the top). */
function perAddressRules(count: number, tested: 'end' | 'front'): Variant['setup'] {
  return async (lab) => {
    const firewall = new Firewall({ runner: iptablesRunner({ prefix: ['ip', 'netns', 'exec', lab.host.name] }), layout: labLayout(PORTS), log, maxIps: count });
    await firewall.start();
    if (tested === 'front') firewall.allow(TESTED, 'tested.test.');
    for (let i = 0; i < count - 1; i++) firewall.allow(filler(i), `filler${i}.test.`);
    if (tested === 'end') firewall.allow(TESTED, 'tested.test.');
    await firewall.settled();
    firewall.stop(); // no expiry or reconcile timers while the row is measured
    return acceptPosition(await lab.rules());
  };
}

/** "rule N of M" for the tested ACCEPT among our accept rules, checked against the listing. */
function acceptPosition(listing: readonly string[]): string {
  const accepts = listing.map(parseOwnedRule).filter((r) => r?.role === 'accept');
  const at = accepts.findIndex((r) => r?.address === TESTED && r.port === PORT);
  if (at < 0) throw new Error(`no ACCEPT for ${TESTED}:${PORT} in ${CHAIN}`);
  return `${at + 1} of ${accepts.length}`;
}

/** on-his-name's IpsetBackend: the set and its one rule, then every address in one apply. */
function ipsetBackend(count: number): Variant['setup'] {
  return async (lab) => {
    const prefix = ['ip', 'netns', 'exec', lab.host.name];
    const backend = new IpsetBackend({ iptables: iptablesRunner({ prefix }), ipset: execIpset({ prefix }), layout: labLayout(PORTS) });
    await backend.sync();
    const expiresAt = Date.now() / 1000 + 3600;
    const entries = [TESTED, ...Array.from({ length: count - 1 }, (_, i) => filler(i))];
    await backend.apply(entries.map((address, i) => ({ address, name: i ? `filler${i - 1}.test.` : 'tested.test.', expiresAt })), []);
    const listed = await lab.hostExec('ipset', ['list', '-t', SET_V4]);
    return `set of ${/Number of entries: (\d+)/.exec(listed)?.[1] ?? '?'}`;
  };
}

/**
 * on-his-name's NftablesBackend (`--backend nftables`) through its own Firewall and the CLI's
 * long-lived nft: table inet on-his-name, every address in the set allow4, the tested one first.
 */
function nftBackend(count: number): Variant['setup'] {
  return async (lab) => {
    const runner = nftRunner({ prefix: ['ip', 'netns', 'exec', lab.host.name], persistent: true });
    const layout = labLayout(PORTS);
    const table = new NftTable(runner, {
      bridge: layout.bridge,
      ports: PORTS.map((port) => ({ protocol: 'tcp' as const, port })),
      hostPorts: [],
      4: { subnets: layout.subnets ?? [], dns: layout.dns ?? [] },
      6: { subnets: [], dns: [] },
    });
    const firewall = new Firewall({ backend: new NftablesBackend({ table, family: 4 }), log, maxIps: count });
    try {
      await firewall.start();
      firewall.allow(TESTED, 'tested.test.', 3600);
      for (let i = 0; i < count - 1; i++) firewall.allow(filler(i), `filler${i}.test.`, 3600);
      await firewall.settled();
    } finally {
      firewall.stop(); // no expiry or reconcile timers while the row is measured
      runner.close();
    }
    const listed = await lab.hostExec('nft', ['list', 'set', FAMILY, TABLE, 'allow4']);
    return `set of ${(listed.match(/\b198\.\d+\.\d+\.\d+\b/g) ?? []).length}`;
  };
}

/** Bench-only: the same block in a native nftables table with a concatenated set. */
function nftSet(count: number): Variant['setup'] {
  return async (lab) => {
    const entries = [TESTED, ...Array.from({ length: count - 1 }, (_, i) => filler(i))];
    const elements = entries.flatMap((a) => PORTS.map((p) => `${a} . ${p}`));
    const script = [
      'table ip ohnbench {',
      '  set allowed { type ipv4_addr . inet_service; size 131072; }',
      '  chain forward {',
      '    type filter hook forward priority filter - 1; policy accept;',
      `    iifname "${BRIDGE}" ct state established,related return`,
      `    iifname "${BRIDGE}" oifname "${BRIDGE}" return`,
      `    iifname "${BRIDGE}" ip daddr . tcp dport @allowed accept`,
      `    iifname "${BRIDGE}" drop`,
      '  }',
      '}',
      // Elements in chunks: one huge line is slow for nft's parser.
      ...chunks(elements, 1000).map((c) => `add element ip ohnbench allowed { ${c.join(', ')} }`),
      '',
    ].join('\n');
    await execa('ip', ['netns', 'exec', lab.host.name, 'nft', '-f', '-'], { input: script });
    return `set of ${elements.length}`;
  };
}

/** Bench-only: per-address rules in their own chain, reached by one `-i BRIDGE` jump. */
function jumpChain(count: number): Variant['setup'] {
  return async (lab) => {
    const entries = [...Array.from({ length: count - 1 }, (_, i) => filler(count - 2 - i)), TESTED];
    const lines = [
      ':OHN-ACCEPT - [0:0]',
      ...entries.flatMap((a) => [...PORTS].reverse().map((p) => `-A OHN-ACCEPT ${acceptRule(BRIDGE, a, p)}`)),
      `-I ${CHAIN} 1 ${establishedRule(BRIDGE)}`,
      `-I ${CHAIN} 2 -i ${BRIDGE} -m comment --comment "${TAG} bench-jump" -j OHN-ACCEPT`,
      `-I ${CHAIN} 3 ${dropRule(BRIDGE)}`,
    ];
    await restore(lab, lines);
    const accepts = (await lab.iptables('-S', 'OHN-ACCEPT')).split('\n').filter((l) => l.startsWith('-A'));
    const at = accepts.findIndex((l) => l.includes(`-d ${TESTED}/32`) && l.includes(`--dport ${PORT} `));
    return `${at + 1} of ${accepts.length}`;
  };
}

async function main(): Promise<void> {
  if (!(RUNS >= 1 && RUNS <= 20 && SECONDS >= 1 && SECONDS <= 60)) throw new Error('usage: packet-path.ts [runs 1-20] [seconds 1-60]');
  await checkTools();

  const variants: Variant[] = [
    { label: 'no on-his-name rules (Docker\'s DOCKER-USER only)', setup: async () => '-' },
    { label: 'on-his-name, 1 address', setup: perAddressRules(1, 'end') },
    { label: 'on-his-name, 1,000 addresses, tested last', setup: perAddressRules(1000, 'end') },
    { label: 'on-his-name, 1,000 addresses, tested first', setup: perAddressRules(1000, 'front') },
    { label: 'on-his-name, 10,000 addresses, tested last', setup: perAddressRules(10_000, 'end') },
    { label: 'on-his-name, 10,000 addresses, tested first', setup: perAddressRules(10_000, 'front') },
    { label: 'bench only: 10,000 per-address rules behind one `-i BRIDGE` jump, tested last', setup: jumpChain(10_000) },
    { label: 'on-his-name --backend ipset, 1 address', setup: ipsetBackend(1) },
    { label: 'on-his-name --backend ipset, 1,000 addresses', setup: ipsetBackend(1000) },
    { label: 'on-his-name --backend ipset, 10,000 addresses', setup: ipsetBackend(10_000) },
    { label: 'bench only: 10,000 addresses in a native nftables set', setup: nftSet(10_000) },
    { label: 'on-his-name --backend ipset, 100,000 addresses', setup: ipsetBackend(100_000) },
    { label: 'on-his-name --backend nftables, 1 address', setup: nftBackend(1) },
    { label: 'on-his-name --backend nftables, 10,000 addresses', setup: nftBackend(10_000) },
    { label: 'on-his-name --backend nftables, 100,000 addresses', setup: nftBackend(100_000) },
  ];
  const only = process.env.VARIANTS?.split(',').map(Number);
  const selected = only ? variants.filter((_, i) => only.includes(i)) : variants;

  await measure({ variants: selected, runs: RUNS, seconds: SECONDS });
}

await main();
