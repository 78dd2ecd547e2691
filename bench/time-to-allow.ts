/**
 * Time to allow: from a dnstap frame's arrival to its ACCEPT rules being in the kernel,
 * inside a network namespace this script creates and removes. Single answers at a low
 * rate (p50, p99), and a burst of 1,000 answers with distinct addresses (time until all
 * are in). Peer: the naive way, one `iptables -I` exec per rule as the Go original does.
 * The iptables backend runs twice: one iptables-restore exec per batch, and one
 * long-lived `iptables-restore -v` acknowledging each batch (what the CLI uses).
 *
 * The ipset backend's rows drive IpsetBackend.apply() the way the Firewall batches: one
 * apply for everything queued in the same turn of the event loop (a single answer: one
 * address; the burst: all 1,000), with ipset fed either by one `ipset restore` exec per
 * batch or through stdin of one long-lived `ipset -` (acknowledged by a `version` line).
 *
 *   sudo npx tsx bench/time-to-allow.ts [singles=200] [bursts=5]
 */
import { execa } from 'execa';
import { pino } from 'pino';
import { decide, onePolicy } from '../src/pipeline/decision.js';
import { Firewall } from '../src/firewall/firewall.js';
import { iptablesRunner } from '../src/firewall/iptables.js';
import type { Entry } from '../src/firewall/backend.js';
import { IpsetBackend } from '../src/firewall/ipset-backend.js';
import { SET_V4 } from '../src/firewall/ipset.js';
import { execIpset, persistentIpset, type IpsetRunner } from '../src/firewall/ipset-runner.js';
import { acceptRule } from '../src/firewall/rules.js';
import { Patterns } from '../src/policy/patterns.js';
import { clientResponse } from '../test/support/dnstap.js';
import { isInside, rerunInNamespace } from './namespace.js';
import { median, percentile, printTable } from './stats.js';
import { testLayout } from '../test/support/layout.js';

const SINGLES = Number(process.argv[2] ?? 200);
const BURSTS = Number(process.argv[3] ?? 5);
const BURST_SIZE = 1000;
const BRIDGE = 'br-bench';
const layout = testLayout(BRIDGE);
const log = pino({ level: 'silent' });
const policy = onePolicy(Patterns.compile(['**.allowed.example.']));

/** Distinct documentation-range addresses: 198.18.0.0/15 holds 131,072 of them. */
function address(i: number): string {
  return `198.18.${(i >> 8) & 255}.${i & 255}`;
}

function frame(i: number): Buffer {
  const name = `host${i}.allowed.example`;
  return clientResponse('172.18.0.2', name, [{ type: 'A', name, ttl: 300, data: address(i) }]);
}

async function resetChain(): Promise<void> {
  await execa('iptables', ['-F', 'DOCKER-USER']);
  await execa('iptables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
}

/** exec: one iptables-restore per batch; persistent: one long-lived iptables-restore -v fed through stdin (what the CLI runs). */
type RestoreMode = 'exec' | 'persistent';

async function oursSingles(mode: RestoreMode): Promise<number[]> {
  await resetChain();
  const runner = iptablesRunner({ persistent: mode === 'persistent' });
  const firewall = new Firewall({ runner, layout, log });
  await firewall.start();
  const latencies: number[] = [];
  for (let i = 0; i < SINGLES; i++) {
    const bytes = frame(i);
    const started = performance.now();
    const decision = decide(bytes, policy);
    if (decision.outcome !== 'allow') throw new Error('expected an allow');
    for (const r of decision.ipv4) firewall.allow(r.address, decision.name);
    await firewall.settled();
    latencies.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 10));
  }
  runner.close?.();
  return latencies;
}

async function oursBurst(mode: RestoreMode, run: number): Promise<number> {
  await resetChain();
  const runner = iptablesRunner({ persistent: mode === 'persistent' });
  const firewall = new Firewall({ runner, layout, log });
  await firewall.start();
  const frames = Array.from({ length: BURST_SIZE }, (_, i) => frame(100_000 + run * BURST_SIZE + i));
  const started = performance.now();
  for (const bytes of frames) {
    const decision = decide(bytes, policy);
    if (decision.outcome === 'allow') for (const r of decision.ipv4) firewall.allow(r.address, decision.name);
  }
  await firewall.settled();
  const elapsed = performance.now() - started;
  runner.close?.();
  return elapsed;
}

type IpsetMode = 'exec' | 'persistent';

/** A fresh chain and set, and the backend on the chosen runner; the runner is closed by the caller. */
async function ipsetBackend(mode: IpsetMode): Promise<{ backend: IpsetBackend; runner: IpsetRunner }> {
  await resetChain();
  await execa('ipset', ['destroy', SET_V4], { reject: false });
  const runner = mode === 'exec' ? execIpset() : persistentIpset();
  const backend = new IpsetBackend({ iptables: iptablesRunner(), ipset: runner, layout });
  await backend.sync();
  return { backend, runner };
}

/** What the Firewall's drain does with one batch: every allowed address of the decisions, one apply. */
async function decideAndApply(backend: IpsetBackend, frames: readonly Buffer[]): Promise<void> {
  const entries: Entry[] = [];
  const expiresAt = Date.now() / 1000 + 300;
  for (const bytes of frames) {
    const decision = decide(bytes, policy);
    if (decision.outcome === 'allow') for (const r of decision.ipv4) entries.push({ address: r.address, name: decision.name, expiresAt });
  }
  await backend.apply(entries, []);
}

async function ipsetSingles(mode: IpsetMode): Promise<number[]> {
  const { backend, runner } = await ipsetBackend(mode);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < SINGLES; i++) {
      const bytes = frame(200_000 + i);
      const started = performance.now();
      await decideAndApply(backend, [bytes]);
      latencies.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    runner.close();
  }
  return latencies;
}

async function ipsetBurst(mode: IpsetMode, run: number): Promise<number> {
  const { backend, runner } = await ipsetBackend(mode);
  const frames = Array.from({ length: BURST_SIZE }, (_, i) => frame(300_000 + run * BURST_SIZE + i));
  try {
    const started = performance.now();
    await decideAndApply(backend, frames);
    return performance.now() - started;
  } finally {
    runner.close();
  }
}

/** The Go original's way: two `iptables -I` per address, one exec each. */
async function naive(addresses: string[]): Promise<void> {
  for (const a of addresses) {
    for (const port of layout.ports) {
      await execa('iptables', ['-w', '-I', 'DOCKER-USER', '1', ...acceptRule(BRIDGE, a, port).split(' ').map((w) => w.replace(/^"|"$/g, ''))]);
    }
  }
}

async function naiveSingles(): Promise<number[]> {
  await resetChain();
  const latencies: number[] = [];
  for (let i = 0; i < Math.min(SINGLES, 100); i++) {
    const started = performance.now();
    await naive([address(50_000 + i)]);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

async function naiveBurst(): Promise<number> {
  await resetChain();
  const started = performance.now();
  await naive(Array.from({ length: BURST_SIZE }, (_, i) => address(60_000 + i)));
  return performance.now() - started;
}

async function inside(): Promise<void> {
  await execa('iptables', ['-N', 'DOCKER-USER']);
  const ours: Record<RestoreMode, { singles: number[]; bursts: number[] }> = { exec: { singles: [], bursts: [] }, persistent: { singles: [], bursts: [] } };
  for (const mode of ['exec', 'persistent'] as const) {
    ours[mode].singles = await oursSingles(mode);
    for (let run = 0; run < BURSTS; run++) ours[mode].bursts.push(await oursBurst(mode, run + (mode === 'persistent' ? BURSTS : 0)));
  }
  const ipset: Record<IpsetMode, { singles: number[]; bursts: number[] }> = { exec: { singles: [], bursts: [] }, persistent: { singles: [], bursts: [] } };
  for (const mode of ['exec', 'persistent'] as const) {
    ipset[mode].singles = await ipsetSingles(mode);
    for (let run = 0; run < BURSTS; run++) ipset[mode].bursts.push(await ipsetBurst(mode, run));
  }
  const peerSingles = await naiveSingles();
  const peerBurst = await naiveBurst();
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  printTable(
    ['way', 'single answer p50', 'single answer p99', `burst of ${BURST_SIZE} distinct addresses, all in the kernel`],
    [
      ['on-his-name (decode + one iptables-restore exec per batch)', ms(median(ours.exec.singles)), ms(percentile(ours.exec.singles, 99)), `${ms(median(ours.exec.bursts))} (median of ${BURSTS})`],
      ['on-his-name (decode + one long-lived `iptables-restore -v` fed through stdin: the CLI)', ms(median(ours.persistent.singles)), ms(percentile(ours.persistent.singles, 99)), `${ms(median(ours.persistent.bursts))} (median of ${BURSTS})`],
      ['on-his-name --backend ipset (decode + one `ipset restore` exec per batch)', ms(median(ipset.exec.singles)), ms(percentile(ipset.exec.singles, 99)), `${ms(median(ipset.exec.bursts))} (median of ${BURSTS})`],
      ['on-his-name --backend ipset (decode + one long-lived `ipset -` fed through stdin)', ms(median(ipset.persistent.singles)), ms(percentile(ipset.persistent.singles, 99)), `${ms(median(ipset.persistent.bursts))} (median of ${BURSTS})`],
      ['naive: one `iptables -I` per rule (2 per address)', ms(median(peerSingles)), ms(percentile(peerSingles, 99)), `${ms(peerBurst)} (one run)`],
    ],
  );
}

async function main(): Promise<void> {
  if (isInside()) return inside();
  await rerunInNamespace('ohn-bench', import.meta.url, [String(SINGLES), String(BURSTS)]);
}

await main();
