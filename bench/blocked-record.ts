/**
 * Packet-path cost of recording what is blocked (issue 16): dropped packets per second
 * through the lab's bridge with the record and without it, per backend, and the share of
 * the drops the blocked view saw.
 *
 *   container (192.0.2.10, blaster) ── ohnbr0 ── host: FORWARD → on-his-name's drop ── (never reached)
 *
 * The lab is test/lab's firewall lab (DNS never started). For each backend the real CLI
 * runs in the host namespace, either with --blocked-interval 0 ("off": the iptables
 * backends keep the jump to an empty ON-HIS-NAME-RECORD, nftables has no update rule) or
 * with the default --blocked-interval 5 ("on": the packet path fills the record set, the
 * daemon drains it every 5 s, as in production). The blaster (bench/blast.py, pinned to
 * CPU 0) sends small UDP datagrams for SECONDS to addresses nothing opened,
 * so every one meets the default policy's drop; the daemon is pinned to CPU 1. A forwarded
 * packet is processed in the sender's own softirq, so the sender's CPU time holds the
 * packet path's. The rate is the drop rule's counter delta over the CPU time the sender
 * used (its user and system time, softirq included, plus ksoftirqd/0's when the kernel
 * deferred some): per second of a core, not of the clock, because other jobs on a shared
 * machine take the core away for a varying share of the wall time, which moved wall-clock
 * rates by 2× between rounds here while CPU-time rates stayed within 2 %. The difference
 * of the two rates' inverses is what recording adds to each dropped packet (the sender's
 * own cost, the same in both, cancels out). Workloads:
 *
 *   1 destination         every packet counts in one element (a client retrying)
 *   10,000 destinations   a working set that fits the kernel set (16,384)
 *   50,000 destinations   a flood past the set's size: once it is full, a new destination's
 *                         packet is dropped unrecorded until the next read empties the set
 *
 * "recorded" is what the daemon drained for the workload (on_his_name_blocked_packets_total,
 * read once the set is empty after the run) against what was dropped.
 *
 * The bad result this guards against is a record that makes every drop expensive (a
 * container flooding closed addresses would then cost the host more CPU per packet): the
 * "on" row's ratio to "off" shows it, and a ratio under 0.9 is marked COSTLY. To show that
 * the bench can see such a cost at all, a "canary" row runs with the record off and
 * CANARY_RULES unmatched rules in mangle FORWARD, a known linear cost every forwarded packet
 * pays: it must come out COSTLY, or the bench is too noisy to trust (CANARY=0 leaves it out).
 *
 *   sudo npx tsx bench/blocked-record.ts [rounds=3] [seconds=3]     (about 7 minutes)
 *
 * BACKENDS=iptables,nftables runs only those. Needs root, python3 (Debian's: the blaster;
 * Node's dgram sends too slowly for the packet path's cost to show against the sender's
 * own, see blast.py), taskset, iptables, ipset, nft.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blockedKernel } from '../test/lab/blocked.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../test/lab/firewall-lab.js';
import { pollUntil } from '../test/lab/ns-process.js';
import { DEFAULT_POLICY, POLICY_BACKENDS, unavailable, type PolicyBackend } from '../test/lab/policy-backends.js';
import { CLI, startCli, type CliProcess } from '../test/support/cli-process.js';
import { median, printTable } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 3);
const SENDER_CPU = '0';
const DAEMON_CPU = '1';
const ADMIN_PORT = 9464;
/** USER_HZ: the unit of /proc/PID/stat's times (100 on Linux's every architecture). */
const CLOCK_TICKS = 100;
/** The production default: how long a full set stays full, at most. */
const BLOCKED_INTERVAL = '5';
/** Unmatched rules the canary row adds ahead of everything: a cost the bench must see (about 5 ns each here, some 20 % in all). */
const CANARY_RULES = 256;
const BLAST = fileURLToPath(new URL('./blast.py', import.meta.url));
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const WORKLOADS = [
  { label: '1 destination', hosts: '10-10', ports: '9999-9999' },
  { label: '10,000 destinations', hosts: '1-250', ports: '10000-10039' },
  { label: '50,000 destinations', hosts: '1-250', ports: '10000-10199' },
] as const;
type Workload = (typeof WORKLOADS)[number];
type Config = 'off' | 'on' | 'canary';
const chosen = process.env.BACKENDS?.split(',');
const backends = POLICY_BACKENDS.filter((b) => !chosen || chosen.includes(b.name));
/** The canary runs on the first backend only: it measures the bench, not a backend. */
const configsOf = (backend: PolicyBackend): Config[] => (process.env.CANARY !== '0' && backend === backends[0] ? ['off', 'on', 'canary'] : ['off', 'on']);

interface Sample {
  /** Dropped per second of the sender's CPU (see the top). */
  perSecond: number;
  /** Dropped per second of the clock: what a loaded machine moves. */
  wallPerSecond: number;
  dropped: number;
  /** Packets the daemon drained for this run (record on only). */
  recorded?: number;
  errors: number;
}
/** Samples by "backend|config|workload". */
const samples = new Map<string, Sample[]>();
const keyOf = (backend: PolicyBackend, config: Config, workload: Workload) => `${backend.name}|${config}|${workload.label}`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  for (const backend of backends) {
    const missing = await unavailable(backend);
    if (missing) throw new Error(missing);
  }
  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-blocked-'));
  let lab: FirewallLab | undefined;
  let daemon: CliProcess | undefined;
  const cleanup = async () => {
    await daemon?.stop();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  };
  // Ctrl-C leaves no namespace and no daemon behind.
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    await chmod(dir, 0o755);
    await execa(PYTHON, ['--version']).catch((err: Error) => {
      throw new Error(`bench/blocked-record.ts sends with bench/blast.py and needs ${PYTHON} (apt-get install python3, or PYTHON=/path/to/python3): ${err.message}`, { cause: err });
    });
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock') });
    console.log(
      `# blocked-record: ${ROUNDS} round(s) × ${SECONDS} s, backends ${backends.map((b) => b.name).join(', ')}; ` +
        `${new Date().toISOString()}; ${cpus().length} × ${cpus()[0]?.model.trim()}; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      for (const backend of backends) {
        for (const config of configsOf(backend)) {
          daemon = await start(lab, dir, backend, config === 'on');
          if (config === 'canary') await canary(lab, 'add');
          for (const workload of WORKLOADS) {
            const sample = await measure(lab, backend, workload, config === 'on');
            samples.set(keyOf(backend, config, workload), [...(samples.get(keyOf(backend, config, workload)) ?? []), sample]);
            const share = sample.recorded === undefined ? '' : `, ${percent(sample.recorded / sample.dropped)} recorded`;
            console.log(`round ${round + 1} ${backend.name} ${config} ${workload.label}: ${rate(sample.perSecond)} dropped per CPU second (${rate(sample.wallPerSecond)} per wall second)${share}`);
          }
          if (config === 'canary') await canary(lab, 'remove');
          await daemon.stop();
          daemon = undefined;
          await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'reset']);
        }
      }
    }
    console.log(`# load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    report();
  } finally {
    await cleanup();
  }
}

async function start(lab: FirewallLab, dir: string, backend: PolicyBackend, record: boolean): Promise<CliProcess> {
  const daemon = startCli(
    lab.host.name,
    [
      '--interface', BRIDGE, '--listen', join(dir, 'dnstap.sock'), '--admin-listen', String(ADMIN_PORT),
      '--blocked-interval', record ? BLOCKED_INTERVAL : '0', ...backend.args, 'allowed.test.',
    ],
    {},
    ['taskset', '-c', DAEMON_CPU],
  );
  await daemon.waitFor((l) => l.msg === 'on-his-name is running', 20_000).catch(async (err: Error) => {
    await daemon.stop();
    throw err;
  });
  return daemon;
}

/** CANARY_RULES rules in mangle FORWARD that match nothing the lab sends (198.18.0.0/15 is never used). */
async function canary(lab: FirewallLab, action: 'add' | 'remove'): Promise<void> {
  const lines = Array.from({ length: CANARY_RULES }, (_, i) => `-${action === 'add' ? 'A' : 'D'} FORWARD -d 198.18.${i >> 8}.${i & 255}/32 -m comment --comment bench-canary -j RETURN`);
  await execa('ip', ['netns', 'exec', lab.host.name, 'iptables-restore', '--noflush'], { input: `*mangle\n${lines.join('\n')}\nCOMMIT\n` });
}

/** CPU seconds ksoftirqd/0 (the sender's core's) has used: softirq work the kernel deferred out of the sender's context. */
async function softirqDaemonSeconds(): Promise<number> {
  const pid = (await execa('pgrep', ['-x', `ksoftirqd/${SENDER_CPU}`])).stdout.trim();
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function blockedPackets(lab: FirewallLab): Promise<number> {
  const body = await lab.hostExec('curl', ['-s', '--max-time', '10', `http://127.0.0.1:${ADMIN_PORT}/metrics`]);
  const line = body.split('\n').find((l) => l.startsWith(`on_his_name_blocked_packets_total{policy="${DEFAULT_POLICY}"} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function measure(lab: FirewallLab, backend: PolicyBackend, workload: Workload, record: boolean): Promise<Sample> {
  const recordedBefore = record ? await blockedPackets(lab) : 0;
  const before = await backend.drops(lab.host, DEFAULT_POLICY);
  const deferredBefore = await softirqDaemonSeconds();
  const result = await execa('ip', ['netns', 'exec', lab.containers[0]!.name, 'taskset', '-c', SENDER_CPU, PYTHON, BLAST, '203.0.113', workload.hosts, workload.ports, String(SECONDS)]);
  const { errors, seconds, cpuSeconds } = JSON.parse(String(result.stdout)) as { sent: number; errors: number; seconds: number; cpuSeconds: number };
  const dropped = (await backend.drops(lab.host, DEFAULT_POLICY)) - before;
  const cpu = cpuSeconds + (await softirqDaemonSeconds()) - deferredBefore;
  const sample: Sample = { perSecond: dropped / cpu, wallPerSecond: dropped / seconds, dropped, errors };
  if (record) {
    // Nothing is sent any more: the daemon's next read empties the set and counts what it held.
    const kernel = blockedKernel(backend);
    await pollUntil(() => kernel.record(lab.host), (set) => set?.elements === 0, 15_000, 'the record drained after the run', 200);
    sample.recorded = (await pollUntil(() => blockedPackets(lab), (n) => n > recordedBefore, 5_000, 'the drained packets counted', 100)) - recordedBefore;
  }
  return sample;
}

const rate = (n: number) => Math.round(n).toLocaleString('en-US');
const percent = (x: number) => `${(100 * x).toFixed(1)} %`;
const spread = (values: number[]) => `${rate(median(values))} (${rate(Math.min(...values))}–${rate(Math.max(...values))})`;

function report(): void {
  const rows: string[][] = [];
  for (const backend of backends) {
    for (const workload of WORKLOADS) {
      const off = samples.get(keyOf(backend, 'off', workload))!.map((s) => s.perSecond);
      for (const config of configsOf(backend).filter((c) => c !== 'off')) {
        const runs = samples.get(keyOf(backend, config, workload))!;
        const with_ = runs.map((s) => s.perSecond);
        const ratio = median(with_) / median(off);
        const recorded = runs.every((s) => s.recorded !== undefined) ? runs.map((s) => s.recorded! / s.dropped) : undefined;
        rows.push([
          config === 'canary' ? `${backend.name}, canary: off + ${CANARY_RULES} unmatched rules` : backend.name,
          workload.label,
          spread(off),
          spread(with_),
          `${ratio.toFixed(3)}${ratio < 0.9 ? ' **COSTLY**' : ''}`,
          `${Math.round(1e9 / median(with_) - 1e9 / median(off))} ns`,
          recorded ? `${percent(median(recorded))} (${percent(Math.min(...recorded))}–${percent(Math.max(...recorded))})` : '–',
        ]);
      }
    }
  }
  console.log('');
  printTable(['backend', 'workload', 'dropped per sender CPU second, record off (median, min–max)', 'record on (or canary)', 'ratio', 'added per dropped packet', 'drops recorded'], rows);
  const errors = [...samples.values()].flat().reduce((n, s) => n + s.errors, 0);
  if (errors) console.log(`\nsend errors: ${errors}`);
}

await main();
