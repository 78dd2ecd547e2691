/**
 * The packet-path lab the packet-path benchmarks share (bench/packet-path.ts,
 * bench/policy-packet-path.ts): test/lab's firewall lab (DNS never started) with Docker's
 * FORWARD rules added (so conntrack runs in every configuration) and bench/http-server.mjs
 * in place of its web server, pinned to one core and wrk to the other. `measure` installs
 * each configuration afresh, round after round, the configurations taking turns so that
 * drift on the machine spreads over all of them, and prints one row each: new TCP
 * connections per second from container 0 (192.0.2.10) to TESTED:80, one request per
 * connection (`Connection: close`; the server answers HTTP/1.0 and closes).
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { iptablesRunner } from '../src/firewall/iptables.js';
import { restoreScript } from '../src/firewall/planner.js';
import { removeOwned } from '../src/firewall/reset.js';
import { CHAIN } from '../src/firewall/rules.js';
import { BRIDGE, CONTAINERS, FOREIGN_RULE, createFirewallLab, type FirewallLab } from '../test/lab/firewall-lab.js';
import { median, printTable } from './stats.js';

/** The destination every connection goes to: one of the lab internet's servers. */
export const TESTED = '198.51.100.10';
export const PORT = 80;
export const PORTS = [80, 443] as const;
/** Enough parallel connections to keep the server busy, few enough not to queue in its backlog. */
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
/** wrk on one core, the server on the other, so that the two do not fight for one. */
const CLIENT_CPU = '0';
const SERVER_CPU = '1';
const WARMUP_SECONDS = 1;
const HTTP_SERVER = fileURLToPath(new URL('./http-server.mjs', import.meta.url));
export { BRIDGE };

/** Other allowed addresses: 198.18.0.0/15 (benchmarking range) holds 131,072. */
export function filler(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

export interface Variant {
  label: string;
  /** Where the SYN meets its ACCEPT; filled in by setup. */
  position?: string;
  setup(lab: FirewallLab): Promise<string>;
}

const hostRun = (lab: FirewallLab, command: string, args: readonly string[]) => execa('ip', ['netns', 'exec', lab.host.name, command, ...args], { reject: false });

/**
 * DOCKER-USER as Docker leaves it (plus someone else's rule), and nothing else of ours or
 * of a bench-only row: no rule or chain of ours (on-his-name's, its policies', OHN-ACCEPT), no set
 * (the lab's namespace has no other), no nft table, no flows.
 */
export async function resetHost(lab: FirewallLab): Promise<void> {
  await lab.iptables('-F', CHAIN);
  await lab.iptables(...FOREIGN_RULE.split(' '));
  await lab.iptables('-A', CHAIN, '-j', 'RETURN');
  // What `on-his-name reset` removes from iptables: our jumps elsewhere (INPUT's to
  // ON-HIS-NAME-INPUT), our chains, every policy's; then the bench-only chains.
  await removeOwned(iptablesRunner({ prefix: ['ip', 'netns', 'exec', lab.host.name] }));
  const chains = String((await hostRun(lab, 'iptables', ['-S'])).stdout)
    .split('\n')
    .filter((line) => /^-N (ON-HIS-NAME|OHN-)/.test(line))
    .map((line) => line.slice(3));
  if (chains.length) await restore(lab, [...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`)]);
  await hostRun(lab, 'ipset', ['destroy']);
  await hostRun(lab, 'nft', ['delete', 'table', 'ip', 'ohnbench']);
  await hostRun(lab, 'nft', ['delete', 'table', 'inet', 'on-his-name']);
  await hostRun(lab, 'conntrack', ['-F']);
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function restore(lab: FirewallLab, lines: readonly string[]): Promise<void> {
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

export async function tool(name: string, pkg: string): Promise<void> {
  if ((await execa('sh', ['-c', `command -v ${name}`], { reject: false })).exitCode !== 0) {
    throw new Error(`${name} not found: apt-get install ${pkg}`);
  }
}


export interface MeasureOptions {
  variants: readonly Variant[];
  runs: number;
  seconds: number;
  /** The second column's heading: where the tested SYN meets its ACCEPT. */
  positionHeading?: string;
}

/**
 * Build the lab, measure every variant `runs` times round-robin (each installed afresh on a
 * reset host, one unmeasured second of load first), print the table, remove the lab (on a
 * signal too). The first variant is the baseline the costs are relative to.
 */
export async function measure({ variants, runs, seconds, positionHeading = 'tested ACCEPT is rule' }: MeasureOptions): Promise<void> {
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
    const samples = new Map<Variant, Sample[]>(variants.map((v) => [v, []]));
    for (let run = 0; run < runs; run++) {
      for (const variant of variants) {
        await resetHost(lab);
        const started = performance.now();
        variant.position = await variant.setup(lab);
        const setupMs = performance.now() - started;
        await wrk(lab, WARMUP_SECONDS, pid);
        const sample = await wrk(lab, seconds, pid);
        samples.get(variant)!.push(sample);
        process.stderr.write(
          `… run ${run + 1}/${runs} ${variant.label}: ${sample.rate.toFixed(0)} conn/s, ${sample.errors} errors, ` +
            `machine ${(sample.machineBusy * 100).toFixed(0)}% busy, server ${(sample.serverCpu * 100).toFixed(0)}% of a core (setup ${setupMs.toFixed(0)} ms)\n`,
        );
      }
    }
    await resetHost(lab);

    const baseline = median(samples.get(variants[0]!)!.map((s) => s.rate));
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    printTable(
      ['configuration', positionHeading, `new connections/s (median of ${runs} × ${seconds} s)`, 'min', 'max', 'cost vs no rules', 'server CPU (median)', 'machine busy (median)', 'errors'],
      variants.map((v) => {
        const rates = samples.get(v)!.map((s) => s.rate);
        const m = median(rates);
        return [
          v.label,
          v.position ?? '-',
          fmt(m),
          fmt(Math.min(...rates)),
          fmt(Math.max(...rates)),
          v === variants[0] ? '-' : `${(((baseline - m) / baseline) * 100).toFixed(1)} %`,
          `${(median(samples.get(v)!.map((s) => s.serverCpu)) * 100).toFixed(0)} %`,
          `${(median(samples.get(v)!.map((s) => s.machineBusy)) * 100).toFixed(0)} %`,
          String(samples.get(v)!.reduce((a, s) => a + s.errors, 0)),
        ];
      }),
    );
    const base = samples.get(variants[0]!)!.map((s) => s.rate);
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

/** Root and the tools every packet-path benchmark needs. */
export async function checkTools(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark builds network namespaces');
  for (const [name, pkg] of [['wrk', 'wrk'], ['ipset', 'ipset'], ['nft', 'nftables'], ['conntrack', 'conntrack'], ['taskset', 'util-linux'], ['iptables', 'iptables']]) {
    await tool(name!, pkg!);
  }
}
