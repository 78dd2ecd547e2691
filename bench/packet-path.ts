/**
 * Packet path cost: new TCP connections per second from a "container" through the bridge
 * to the "internet", with on-his-name's per-address ACCEPT rules in DOCKER-USER.
 *
 *   container (192.0.2.10, wrk) ── ohnbr0 ── host: FORWARD → DOCKER-USER ── internet (198.51.100.10:80)
 *
 * The lab is test/lab's firewall lab (DNS never started) with Docker's FORWARD rules
 * added (so conntrack runs in every configuration) and bench/http-server.mjs in place of
 * its web server; the server is pinned to one core, wrk to the other. Each configuration
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
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
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
import { restoreScript } from '../src/firewall/planner.js';
import { CHAIN, TAG, acceptRule, dropRule, establishedRule, parseOwnedRule } from '../src/firewall/rules.js';
import { BRIDGE, CONTAINERS, FOREIGN_RULE, createFirewallLab, labLayout, type FirewallLab } from '../test/lab/firewall-lab.js';
import { median, printTable } from './stats.js';

const RUNS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 4);
/** The destination every connection goes to: one of the lab internet's servers. */
const TESTED = '198.51.100.10';
const PORT = 80;
const PORTS = [80, 443] as const;
/** Enough parallel connections to keep the server busy, few enough not to queue in its backlog. */
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
/** wrk on one core, the server on the other, so that the two do not fight for one. */
const CLIENT_CPU = '0';
const SERVER_CPU = '1';
const WARMUP_SECONDS = 1;
const HTTP_SERVER = fileURLToPath(new URL('./http-server.mjs', import.meta.url));
const log = pino({ level: 'silent' });

/** Other allowed addresses: 198.18.0.0/15 (benchmarking range) holds 131,072. */
function filler(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

interface Variant {
  label: string;
  /** Where the SYN meets its ACCEPT; filled in by setup. */
  position?: string;
  setup(lab: FirewallLab): Promise<string>;
}

/** DOCKER-USER as Docker leaves it (plus someone else's rule), no set, no nft table, no flows. */
async function resetHost(lab: FirewallLab): Promise<void> {
  await lab.iptables('-F', CHAIN);
  await lab.iptables(...FOREIGN_RULE.split(' '));
  await lab.iptables('-A', CHAIN, '-j', 'RETURN');
  await execa('ip', ['netns', 'exec', lab.host.name, 'ipset', 'destroy', SET_V4], { reject: false });
  await execa('ip', ['netns', 'exec', lab.host.name, 'nft', 'delete', 'table', 'ip', 'ohnbench'], { reject: false });
  await execa('ip', ['netns', 'exec', lab.host.name, 'nft', 'delete', 'table', FAMILY, TABLE], { reject: false });
  await lab.iptables('-F', 'OHN-ACCEPT').catch(() => undefined);
  await lab.iptables('-X', 'OHN-ACCEPT').catch(() => undefined);
  await execa('ip', ['netns', 'exec', lab.host.name, 'conntrack', '-F'], { reject: false });
}

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

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function restore(lab: FirewallLab, lines: readonly string[]): Promise<void> {
  await execa('ip', ['netns', 'exec', lab.host.name, 'iptables-restore', '--noflush', '--wait', '5'], { input: restoreScript(lines) });
}

/** Seconds of CPU used so far: the whole machine (busy, idle) and one process. */
async function machineCpu(): Promise<{ busy: number; total: number }> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

async function processCpu(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(after[11]) + Number(after[12])) / 100; // utime + stime, in USER_HZ (100)
}

interface Sample {
  rate: number;
  errors: number;
  machineBusy: number;
  serverCpu: number;
}

/** One wrk run from container 1, each request on a new connection; bounded by -d and a timeout. */
async function wrk(lab: FirewallLab, seconds: number, serverPid: number): Promise<Sample> {
  const before = { machine: await machineCpu(), server: await processCpu(serverPid) };
  const child: ResultPromise = execa(
    'ip',
    [
      'netns', 'exec', lab.containers[0]!.name,
      'taskset', '-c', CLIENT_CPU,
      'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '2s', '-H', 'Connection: close', `http://${TESTED}:${PORT}/`,
    ],
    { timeout: (seconds + 10) * 1000, reject: false },
  );
  running.add(child);
  const result = await child;
  running.delete(child);
  const after = { machine: await machineCpu(), server: await processCpu(serverPid) };
  const out = String(result.stdout);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (result.exitCode !== 0 || !Number.isFinite(rate)) throw new Error(`wrk failed (${result.exitCode}): ${out}${String(result.stderr)}`);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = (socketErrors ? socketErrors.slice(1).reduce((a, n) => a + Number(n), 0) : 0) + non2xx;
  const wall = after.machine.total - before.machine.total;
  return {
    rate,
    errors,
    machineBusy: wall > 0 ? (after.machine.busy - before.machine.busy) / wall : NaN,
    serverCpu: wall > 0 ? (after.server - before.server) / (wall / cpus().length) : NaN,
  };
}

const running = new Set<ResultPromise>();

async function listening(lab: FirewallLab, ports: readonly number[]): Promise<boolean> {
  const out = await lab.internet.exec('ss', ['-Hltn']);
  return ports.every((p) => out.includes(`0.0.0.0:${p} `));
}

async function labServerPid(lab: FirewallLab): Promise<number> {
  const { stdout } = await execa('ip', ['netns', 'pids', lab.internet.name]);
  const pids = stdout.split('\n').filter(Boolean).map(Number);
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('tcp-server.mjs')) return pid;
  }
  throw new Error('the lab internet has no tcp-server.mjs process');
}

/**
 * Docker's own FORWARD rules after the DOCKER-USER jump, so that conntrack tracks every
 * flow in every configuration (as on a Docker host), not only once our rules use it.
 */
const DOCKER_FORWARD = [
  ['-A', 'FORWARD', '-o', BRIDGE, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
  ['-A', 'FORWARD', '-i', BRIDGE, '!', '-o', BRIDGE, '-j', 'ACCEPT'],
  ['-A', 'FORWARD', '-i', BRIDGE, '-o', BRIDGE, '-j', 'ACCEPT'],
];

/**
 * Tune the lab for many short connections and swap its web server for the benchmark's.
 * Returns the server's subprocess.
 */
async function prepare(lab: FirewallLab): Promise<{ server: ResultPromise }> {
  for (const rule of DOCKER_FORWARD) await lab.iptables(...rule);
  // Closed flows would otherwise stay in the host's conntrack table for 120 s.
  for (const state of ['time_wait', 'close_wait', 'fin_wait', 'last_ack', 'close']) {
    await lab.host.exec('sysctl', ['-qw', `net.netfilter.nf_conntrack_tcp_timeout_${state}=1`]);
  }
  // Every closed connection leaves the client's port in TIME_WAIT for 60 s: with Linux's
  // default range (28,232 ports) wrk could not open more than about 470 connections a second.
  for (const ns of [...lab.containers, lab.internet]) {
    await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
    await ns.exec('sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1']);
  }
  // test/lab/tcp-server.mjs answers before it reads the request, so under load many
  // requests land on a closed socket and end in a reset: stop it (by pid; the lab
  // started it for us) and serve ports 80 and 443 with bench/http-server.mjs instead.
  await execa('kill', ['-KILL', String(await labServerPid(lab))]);
  const server = execa('ip', ['netns', 'exec', lab.internet.name, 'taskset', '-c', SERVER_CPU, process.execPath, HTTP_SERVER, ...PORTS.map(String)], { reject: false });
  running.add(server);
  for (let attempt = 0; !(await listening(lab, PORTS)); attempt++) {
    if (attempt >= 50) throw new Error('bench/http-server.mjs did not listen within 5 s');
    await sleep(100);
  }
  // Wrapped: an async function that returns the subprocess (a thenable) would wait for it to end.
  return { server };
}

async function tool(name: string, pkg: string): Promise<void> {
  if ((await execa('sh', ['-c', `command -v ${name}`], { reject: false })).exitCode !== 0) {
    throw new Error(`${name} not found: apt-get install ${pkg}`);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark builds network namespaces');
  if (!(RUNS >= 1 && RUNS <= 20 && SECONDS >= 1 && SECONDS <= 60)) throw new Error('usage: packet-path.ts [runs 1-20] [seconds 1-60]');
  for (const [name, pkg] of [['wrk', 'wrk'], ['ipset', 'ipset'], ['nft', 'nftables'], ['conntrack', 'conntrack'], ['taskset', 'util-linux'], ['iptables', 'iptables']]) {
    await tool(name!, pkg!);
  }

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

  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-path-'));
  const labReady = createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock') });
  let closing: Promise<void> | undefined;
  const cleanup = () =>
    (closing ??= (async () => {
      for (const child of running) child.kill('SIGKILL');
      await labReady.then((lab) => lab.close(), () => undefined);
      await rm(dir, { recursive: true, force: true });
    })());
  // A Ctrl-C reaches node once from the terminal and again through npx: every signal
  // after the first only waits for the same cleanup, so the lab is always removed.
  const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!closing) process.stderr.write(`\n${signal}: removing the lab\n`);
    void cleanup().finally(() => process.exit(130));
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  try {
    const lab = await labReady;
    const { server } = await prepare(lab);
    const pid = server.pid!;
    const samples = new Map<Variant, Sample[]>(selected.map((v) => [v, []]));
    for (let run = 0; run < RUNS; run++) {
      for (const variant of selected) {
        await resetHost(lab);
        const started = performance.now();
        variant.position = await variant.setup(lab);
        const setupMs = performance.now() - started;
        await wrk(lab, WARMUP_SECONDS, pid);
        const sample = await wrk(lab, SECONDS, pid);
        samples.get(variant)!.push(sample);
        process.stderr.write(
          `… run ${run + 1}/${RUNS} ${variant.label}: ${sample.rate.toFixed(0)} conn/s, ${sample.errors} errors, ` +
            `machine ${(sample.machineBusy * 100).toFixed(0)}% busy, server ${(sample.serverCpu * 100).toFixed(0)}% of a core (setup ${setupMs.toFixed(0)} ms)\n`,
        );
      }
    }
    await resetHost(lab);

    const baseline = median(samples.get(selected[0]!)!.map((s) => s.rate));
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    printTable(
      ['configuration', 'tested ACCEPT is rule', `new connections/s (median of ${RUNS} × ${SECONDS} s)`, 'min', 'max', 'cost vs no rules', 'server CPU (median)', 'machine busy (median)', 'errors'],
      selected.map((v) => {
        const rates = samples.get(v)!.map((s) => s.rate);
        const m = median(rates);
        return [
          v.label,
          v.position ?? '-',
          fmt(m),
          fmt(Math.min(...rates)),
          fmt(Math.max(...rates)),
          v === selected[0] ? '-' : `${(((baseline - m) / baseline) * 100).toFixed(1)} %`,
          `${(median(samples.get(v)!.map((s) => s.serverCpu)) * 100).toFixed(0)} %`,
          `${(median(samples.get(v)!.map((s) => s.machineBusy)) * 100).toFixed(0)} %`,
          String(samples.get(v)!.reduce((a, s) => a + s.errors, 0)),
        ];
      }),
    );
    const base = samples.get(selected[0]!)!.map((s) => s.rate);
    const pct = (x: number) => `${(((x - baseline) / baseline) * 100).toFixed(0)} %`;
    console.log(
      `\nThe baseline's own runs spread from ${fmt(Math.min(...base))} to ${fmt(Math.max(...base))} conn/s ` +
        `(${pct(Math.min(...base))} / +${pct(Math.max(...base))} around its median): smaller differences are noise here.`,
    );
    console.log(`client: wrk -t1 -c${CONNECTIONS} -H 'Connection: close' on CPU ${CLIENT_CPU} in ${CONTAINERS[0]}; server: bench/http-server.mjs (node) on CPU ${SERVER_CPU}`);
  } catch (err) {
    if (!closing) throw err; // a signal stopped the run: the handler reports and exits
  } finally {
    await cleanup();
    for (const signal of SIGNALS) process.off(signal, onSignal);
  }
}

await main();
