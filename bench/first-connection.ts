/**
 * First-connection penalty by mode, in the Docker lab: for a name never resolved before,
 * the time from the DNS answer to a completed TCP connect, seen by curl inside a container
 * on the on-his-name network (time_connect - time_namelookup), and the SYN retransmits the
 * container's kernel counted (TcpExt TCPSynRetrans), over many fresh names per mode.
 *
 * - dnstap push: unbound with dnstap on the gateway. Like CoreDNS it reports an answer
 *   after sending it and flushes about once a second, so the first SYN often meets the DROP.
 * - inline: on-his-name answers on the gateway (--dns-listen gateway) and forwards to
 *   unbound on 127.0.0.1:5300; an allowed answer waits until its rules are in the kernel.
 * - dnstap connect, stand-in: test/lab/instant-dnstap-dns.ts answers on the gateway and
 *   writes each answer to its listening socket the instant it has sent it; on-his-name
 *   --connect dials it. No producer buffers less, so this is the floor for connect mode,
 *   labelled as such; the order stays CoreDNS's (answer first, report after).
 * - dnstap connect, CoreDNS: CoreDNS 1.14.4+ listens (coredns/Corefile.listen), on-his-name
 *   --connect dials it, and CoreDNS writes each answer as it gives it. Run (in a lab of its
 *   own) only when such a CoreDNS is on the PATH: Debian packages none.
 * - dnstap connect, stand-in, waiting client: the same producer; the client looks the name
 *   up, sleeps 10 ms, then connects: does the rule win when the client is not instant?
 *
 * The stand-in row runs first, while DOCKER-USER holds no ACCEPT rules of the other rows;
 * the table lists push, connect (instant and waiting client), inline.
 *
 *   sudo npx tsx bench/first-connection.ts [names per mode=100]
 */
import { hasCoreDnsListen } from '../test/lab/coredns.js';
import { UPSTREAM_PORT, createDockerLab, type DockerLab } from '../test/lab/docker-lab.js';
import { SYN_RETRANSMITS_SH } from '../test/lab/syn-retransmits.js';
import type { ZoneRecord } from '../test/lab/unbound.js';
import { median, percentile, printTable } from './stats.js';

const NAMES = Number(process.argv[2] ?? 100);
const MODES = [
  { mode: 'dnstap push (unbound, flushes about once a second)', prefix: 'push', net: '198.51.100' },
  { mode: 'inline (--dns-listen gateway, unbound upstream)', prefix: 'inline', net: '203.0.113' },
  {
    mode: 'dnstap connect, stand-in producer that reports each answer the instant it sends it (best case for CoreDNS dnstap listen)',
    prefix: 'connect',
    net: '192.0.2', // the lab's internet routes it like the other two documentation blocks
  },
  {
    mode: 'dnstap connect, the same stand-in, client that looks the name up and waits 10 ms before connecting',
    prefix: 'wait',
    net: '198.18.0', // RFC 2544's benchmarking block: not a range the guard refuses
  },
] as const;

/** How long the `wait` client sleeps between its lookup and its connection. */
const CLIENT_PAUSE_MS = 10;

interface Trial {
  penaltyMs: number;
  synRetransmits: number;
  ok: boolean;
}

async function main(): Promise<void> {
  if (NAMES > 150) throw new Error('at most 150 fresh names per mode (one documentation address each)');
  const records: ZoneRecord[] = MODES.flatMap(({ prefix, net }) =>
    Array.from({ length: NAMES }, (_, i) => ({ name: `${prefix}${i}`, type: 'A' as const, value: `${net}.${100 + i}` })),
  );
  const progress = (m: string) => process.stderr.write(`… ${m}\n`);
  const lab = await createDockerLab({ records, internetAddresses: records.map((r) => r.value), progress });
  const raw: string[] = [];
  const rows = new Map<string, string[]>();
  try {
    // Connect mode first: whether its first SYN gets through depends on how fast the rule
    // goes in, fastest while DOCKER-USER holds no rules of earlier rows (iptables-nft reads the chain).
    const standIn = await lab.startInstantDns();
    const connecting = await lab.startDaemon(['*.test.'], [], { dnstap: 'connect' });
    await connecting.waitFor((l) => l.msg === 'connected to the dnstap producer', 15_000);
    rows.set('connect', row(MODES[2].mode, await trials(lab, 'connect'), raw));
    rows.set('wait', row(MODES[3].mode, await trials(lab, 'wait', CLIENT_PAUSE_MS), raw));
    await standIn.stop(); // the gateway's port 53 goes to unbound

    await lab.startDaemon(['*.test.']);
    const dns = await lab.startDns();
    await new Promise((r) => setTimeout(r, 2000)); // let unbound connect to the dnstap socket
    rows.set('push', row(MODES[0].mode, await trials(lab, 'push'), raw));

    await dns.stop(); // the gateway's port 53 goes to on-his-name
    await lab.startUpstreamDns();
    await lab.startDaemon(['*.test.'], ['--dns-listen', 'gateway', '--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`]);
    rows.set('inline', row(MODES[1].mode, await trials(lab, 'inline'), raw));
  } finally {
    await lab.close();
  }
  if (await hasCoreDnsListen()) {
    // Its own lab: the DNS server on the gateway is CoreDNS listening for on-his-name to dial.
    const connectLab = await createDockerLab({ records, internetAddresses: records.map((r) => r.value), progress, dnstap: 'connect' });
    try {
      const daemon = await connectLab.startDaemon(['*.test.']);
      await connectLab.startDns();
      await daemon.waitFor((l) => l.msg === 'connected to the dnstap producer', 15_000);
      rows.set('coredns', row('dnstap connect with CoreDNS (dnstap listen, --connect)', await trials(connectLab, 'push'), raw));
    } finally {
      await connectLab.close();
    }
  } else {
    rows.set('coredns', ['dnstap connect with CoreDNS (--connect)', '—', '—', '—', '—', '—', '—', '—', 'not measured: needs CoreDNS 1.14.4+ (`dnstap listen`), not installable here']);
  }
  const table = ['push', 'connect', 'wait', 'coredns', 'inline'].map((key) => rows.get(key) ?? []);
  printTable(['mode', 'trials', 'p50', 'p90', 'p99', 'max', 'SYN retransmits', 'trials with a retransmit', 'failed'], table);
  for (const line of raw) console.log(line);
}

/**
 * One container asks for every fresh name of `prefix` in turn, connecting as soon as each
 * answer is in; with `pauseMs`, it first looks the name up and sleeps that long, as a
 * client that does other work between its lookup and its connection (curl then asks again
 * and connects at once: the penalty it sees is what the first answer's rule left of it).
 */
async function trials(lab: DockerLab, prefix: string, pauseMs?: number): Promise<Trial[]> {
  const lookFirst = (name: string) => (pauseMs === undefined ? '' : `nslookup ${name} >/dev/null 2>&1; sleep ${pauseMs / 1000}; `);
  const script = Array.from(
    { length: NAMES },
    (_, i) =>
      `${lookFirst(`${prefix}${i}.test`)}curl -s -o /dev/null --max-time 10 -w '%{time_namelookup} %{time_connect} %{http_code} ' http://${prefix}${i}.test/; ${SYN_RETRANSMITS_SH}`,
  ).join('; ');
  const result = await lab.run(['sh', '-c', script], { timeoutSeconds: NAMES * 10 });
  let before = 0;
  return result.output
    .split('\n')
    .filter((line) => line.trim().split(' ').length === 4)
    .map((line) => {
      const [lookup, connect, code, retransmits] = line.trim().split(' ').map(Number) as [number, number, number, number];
      const trial = { penaltyMs: (connect - lookup) * 1000, synRetransmits: retransmits - before, ok: code === 200 };
      before = retransmits;
      return trial;
    });
}

function row(mode: string, all: Trial[], raw: string[]): string[] {
  const ok = all.filter((t) => t.ok);
  const penalties = ok.map((t) => t.penaltyMs);
  const ms = (v: number) => (v < 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(0)} ms`);
  raw.push(`${mode}: median ${ms(median(penalties))}; raw (ms): ${penalties.map((p) => p.toFixed(0)).join(' ')}`);
  return [
    mode,
    String(all.length),
    ...[50, 90, 99].map((p) => ms(percentile(penalties, p))),
    ms(Math.max(...penalties)),
    String(all.reduce((sum, t) => sum + t.synRetransmits, 0)),
    String(all.filter((t) => t.synRetransmits > 0).length),
    String(all.length - ok.length + (NAMES - all.length)),
  ];
}

await main();
