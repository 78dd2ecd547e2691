/**
 * The three firewall backends side by side, through the entry point the daemon uses: a
 * real dnstap frame handed to Pipeline.onFrame, timed until the Firewall's onInKernel hook
 * fires, which it does once the backend's kernel tool has acknowledged the batch. Inside a
 * network namespace this script creates and removes, with real iptables, ipset and nft.
 *
 * - one address: SINGLES answers 10 ms apart, each with a fresh address (p50, p99, max),
 *   after one answer that starts the long-lived process (reported on its own);
 * - bursts of 1,000 and 10,000 answers with distinct addresses, handed over as the
 *   listener does: as many frames per turn of the event loop as one 64 KiB socket read
 *   carries; from the first frame to the last address in the kernel;
 * - expiry of 10,000 addresses: the Firewall's clock (and the backend's) moved past their
 *   lifetime, then from expire() to the last one closed in the kernel;
 * - every burst and expiry checked against what the kernel lists afterwards; each
 *   measurement on a fresh kernel side (empty DOCKER-USER, no set, no table) and Firewall,
 *   after two unmeasured bursts and one per backend, since a daemon's code is warm.
 *
 * It replaces bench/time-to-allow.ts, which timed the ipset rows from backend.apply() and
 * started every clock at decide(), not at the frame.
 *
 * Rows (BACKENDS=a,b,… picks some): iptables, ipset and nftables as the CLI runs them
 * (long-lived `iptables-restore -v`, `ipset -`, `nft -i`), the same with one exec per
 * batch, and `none`: a backend that resolves at once, to show what our own code costs.
 *
 * What it guards against: the iptables rows are the per-address layout the sets replace,
 * and show what it costs here (bench/RESULTS.md, 2026-11-30: a 1,000-address burst in
 * 90-140 ms, 10,000 in about 5 s, their expiry in about 2 s, p99 8-9 ms for one address:
 * iptables-nft reads the chain before each commit); the `-exec` rows show what an exec per
 * batch costs against a long-lived process (8-10 ms for one address); and before the
 * runners were fixed, the long-lived nft read its input a byte at a time (a burst of 1,000
 * in about 100 ms) and ipset's prompts came one write per line. A change that made the sets
 * slow again would move their figures towards those rows.
 *
 *   sudo npx tsx bench/backends.ts [singles=200] [bursts=5] [big bursts=3]
 */
import { execa } from 'execa';
import { pino } from 'pino';
import type { Entry, FirewallBackend, SyncResult } from '../src/firewall/backend.js';
import { Firewall, type KernelOptions } from '../src/firewall/firewall.js';
import { IpsetBackend } from '../src/firewall/ipset-backend.js';
import { SET_V4 } from '../src/firewall/ipset.js';
import { execIpset, persistentIpset } from '../src/firewall/ipset-runner.js';
import { iptablesRunner } from '../src/firewall/iptables.js';
import { NftablesBackend } from '../src/firewall/nft/backend.js';
import { DEFAULT_POLICY, FAMILY, TABLE, setName } from '../src/firewall/nft/render.js';
import { nftRunner } from '../src/firewall/nft/runner.js';
import { NftTable } from '../src/firewall/nft/table.js';
import type { Layout } from '../src/firewall/planner.js';
import { onePolicy } from '../src/pipeline/decision.js';
import { Pipeline, sameFirewalls } from '../src/pipeline/pipeline.js';
import { systemClock } from '../src/util/clock.js';
import { Patterns } from '../src/policy/patterns.js';
import { AddressGuard } from '../src/policy/special-addresses.js';
import { clientResponse } from '../test/support/dnstap.js';
import { testLayout } from '../test/support/layout.js';
import { isInside, rerunInNamespace } from './namespace.js';
import { median, percentile, printTable } from './stats.js';

const SINGLES = Number(process.argv[2] ?? 200);
const BURSTS = Number(process.argv[3] ?? 5);
const BIG_BURSTS = Number(process.argv[4] ?? 3);
const BURST = 1_000;
const BIG_BURST = 10_000;
/** As a daemon run with --max-ips 100000 would: the default (5,000) would evict during the big burst. */
const MAX_IPS = 100_000;
/** What one read of the dnstap socket hands the decoder (Node's default for a stream). */
const SOCKET_READ = 64 * 1024;
const BRIDGE = 'br-bench';
const layout: Layout = testLayout(BRIDGE);
const policy = onePolicy(Patterns.compile(['**.allowed.example.']));
const producer = { id: 1 };

type Kind = 'iptables' | 'iptables-exec' | 'ipset' | 'ipset-exec' | 'nft' | 'nft-exec' | 'none';
const KINDS: Record<Kind, string> = {
  iptables: 'iptables: per-address rules, long-lived `iptables-restore -v` (the CLI)',
  'iptables-exec': 'iptables: per-address rules, one `iptables-restore` exec per batch',
  ipset: 'ipset: one set behind one rule, long-lived `ipset -` (the CLI)',
  'ipset-exec': 'ipset: one set behind one rule, one `ipset restore` exec per batch',
  nft: 'nftables: table inet on-his-name, long-lived `nft -i` (the CLI)',
  'nft-exec': 'nftables: table inet on-his-name, one `nft -f -` exec per batch',
  none: 'no kernel: a backend that resolves at once (our code alone)',
};

/** Distinct addresses in 198.18.0.0/15 (benchmarking; 131,072 of them), not refused by the guard. */
function address(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

function frame(i: number): Buffer {
  const name = `host${i}.allowed.example`;
  return clientResponse('192.0.2.10', name, [{ type: 'A', name, ttl: 300, data: address(i) }]);
}

/** A settable wall clock (unix seconds) shared by the Firewall and its backend. */
const wall = { offset: 0, now: () => Date.now() / 1000 + wall.offset };

/** Counts addresses as the Firewall reports them in the kernel; resolves when `target` is reached. */
class Tally {
  private count = 0;
  private target = Infinity;
  private done: ((at: number) => void) | undefined;

  hit = (_latencyMs: number, n: number): void => {
    this.count += n;
    if (this.count >= this.target) {
      const done = this.done;
      this.done = undefined;
      this.target = Infinity;
      done?.(performance.now());
    }
  };

  /** Resolves with the time (performance.now) at which `more` further addresses are in. */
  expect(more: number): Promise<number> {
    return new Promise((resolve) => {
      this.target = this.count + more;
      this.done = resolve;
    });
  }
}

class NoKernel implements FirewallBackend {
  readonly where = 'nowhere';
  readonly layout = layout;
  async sync(): Promise<SyncResult> {
    return { adopted: [], rebuilt: true };
  }
  async apply(_add: readonly Entry[], _remove: readonly Entry[]): Promise<void> {}
  async moveTo(): Promise<SyncResult> {
    return this.sync();
  }
}

interface Rig {
  firewall: Firewall;
  pipeline: Pipeline;
  tally: Tally;
  close(): void;
}

/** A fresh kernel side (empty DOCKER-USER, no set, no table) and a started Firewall on `kind`. */
async function rig(kind: Kind): Promise<Rig> {
  await execa('iptables', ['-F', 'DOCKER-USER']);
  await execa('iptables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
  await execa('ipset', ['destroy', SET_V4], { reject: false });
  await execa('nft', ['delete', 'table', FAMILY, TABLE], { reject: false });
  const closers: Array<() => void> = [];
  let kernel: KernelOptions;
  if (kind === 'iptables' || kind === 'iptables-exec') {
    const runner = iptablesRunner({ persistent: kind === 'iptables' });
    closers.push(() => runner.close?.());
    kernel = { runner, layout };
  } else if (kind === 'ipset' || kind === 'ipset-exec') {
    const ipset = kind === 'ipset' ? persistentIpset() : execIpset();
    closers.push(() => ipset.close());
    kernel = { backend: new IpsetBackend({ iptables: iptablesRunner(), ipset, layout, maxElements: 262_144, nowSeconds: wall.now }) };
  } else if (kind === 'nft' || kind === 'nft-exec') {
    const runner = nftRunner({ persistent: kind === 'nft' });
    closers.push(() => runner.close());
    const table = new NftTable(runner, {
      bridge: BRIDGE,
      ports: layout.ports,
      hostPorts: [],
      4: { subnets: layout.subnets ?? [], dns: layout.dns ?? [] },
      6: { subnets: [], dns: [] },
    });
    kernel = { backend: new NftablesBackend({ table, family: 4, nowSeconds: wall.now }) };
  } else {
    kernel = { backend: new NoKernel() };
  }
  const tally = new Tally();
  // The daemon logs every allow at info level: so does this, to /dev/null.
  const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const firewall = new Firewall({ ...kernel, log, clock: { ...systemClock, now: () => Date.now() + wall.offset * 1000 }, maxIps: MAX_IPS, onInKernel: tally.hit });
  await firewall.start();
  const pipeline = new Pipeline(policy, new AddressGuard(), sameFirewalls({ 4: firewall }), log);
  return {
    firewall,
    pipeline,
    tally,
    close() {
      firewall.stop();
      for (const close of closers) close();
    },
  };
}

/** How many of our addresses the kernel holds, read with the tool itself. */
async function inKernel(kind: Kind): Promise<number> {
  if (kind.startsWith('iptables')) {
    const { stdout } = await execa('iptables', ['-S', 'DOCKER-USER']);
    return stdout.split('\n').filter((l) => l.includes('-j ACCEPT') && l.includes(' -d 198.')).length / layout.ports.length;
  }
  if (kind.startsWith('ipset')) {
    const { stdout } = await execa('ipset', ['list', '-t', SET_V4]);
    return Number(/Number of entries: (\d+)/.exec(stdout)?.[1]);
  }
  if (kind.startsWith('nft')) {
    const { stdout } = await execa('nft', ['-j', 'list', 'set', FAMILY, TABLE, setName(DEFAULT_POLICY, 4)]);
    const set = (JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables.find((i) => i.set)?.set;
    return set?.elem?.length ?? 0;
  }
  return NaN;
}

/** One answer, from onFrame to the hook. */
async function one(r: Rig, i: number): Promise<number> {
  const bytes = frame(i);
  const inKernel = r.tally.expect(1);
  const started = performance.now();
  r.pipeline.onFrame(bytes, producer);
  return (await inKernel) - started;
}

interface Singles {
  first: number;
  latencies: number[];
}

async function singles(kind: Kind): Promise<Singles> {
  const r = await rig(kind);
  try {
    const first = await one(r, 0);
    const latencies: number[] = [];
    for (let i = 1; i <= SINGLES; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      latencies.push(await one(r, i));
    }
    return { first, latencies };
  } finally {
    r.close();
  }
}

/** Frames handed over as the listener does: one socket read's worth per turn of the event loop. */
async function deliver(r: Rig, frames: readonly Buffer[]): Promise<void> {
  const perRead = Math.max(1, Math.floor(SOCKET_READ / (frames[0]!.length + 4)));
  for (let at = 0; at < frames.length; at += perRead) {
    if (at > 0) await new Promise((resolve) => setImmediate(resolve));
    for (const bytes of frames.slice(at, at + perRead)) r.pipeline.onFrame(bytes, producer);
  }
}

interface BurstResult {
  burstMs: number;
  expiryMs?: number;
}

/**
 * A warm rig (one address in, the process started), then `size` fresh answers; with
 * `expire`, every address's lifetime then runs out on the clock and the close is timed.
 */
async function burst(kind: Kind, size: number, expire: boolean): Promise<BurstResult> {
  const r = await rig(kind);
  try {
    await one(r, 0);
    const frames = Array.from({ length: size }, (_, k) => frame(1 + k));
    // Frames come in a socket's data event: a turn of the event loop of their own.
    await new Promise((resolve) => setImmediate(resolve));
    const allIn = r.tally.expect(size);
    const started = performance.now();
    await deliver(r, frames);
    const burstMs = (await allIn) - started;
    await r.firewall.settled();
    const held = await inKernel(kind);
    if (kind !== 'none' && held !== size + 1) throw new Error(`${kind}: the kernel holds ${held} addresses, not ${size + 1}`);
    if (!expire) return { burstMs };
    wall.offset += 86_400 * 2; // past any lifetime the Firewall gives
    const expiring = performance.now();
    const closed = r.firewall.expire();
    await r.firewall.settled();
    const expiryMs = performance.now() - expiring;
    if (closed !== size + 1) throw new Error(`${kind}: ${closed} addresses expired, not ${size + 1}`);
    const left = await inKernel(kind);
    if (kind !== 'none' && left !== 0) throw new Error(`${kind}: ${left} addresses left in the kernel after expiry`);
    return { burstMs, expiryMs };
  } finally {
    r.close();
  }
}

function spread(values: readonly number[]): string {
  if (values.length === 0) return '-';
  const f = (x: number) => (x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : Math.round(x).toLocaleString('en'));
  return values.length === 1 ? `${f(values[0]!)} ms` : `${f(median(values))} ms (${f(Math.min(...values))}–${f(Math.max(...values))})`;
}

async function inside(): Promise<void> {
  await execa('ip', ['link', 'set', 'lo', 'up']);
  await execa('iptables', ['-N', 'DOCKER-USER']);
  await execa('iptables', ['-A', 'FORWARD', '-j', 'DOCKER-USER']);
  const only = process.env.BACKENDS?.split(',') as Kind[] | undefined;
  const kinds = (Object.keys(KINDS) as Kind[]).filter((k) => !only || only.includes(k));
  const rows: string[][] = [];
  const raw: string[] = [];
  // A daemon's code is warm: two unmeasured bursts through no kernel, one through each backend.
  for (let run = 0; run < 2; run++) await burst('none', BIG_BURST, true);
  for (const kind of kinds) {
    const progress = (what: string) => process.stderr.write(`… ${kind}: ${what}\n`);
    await burst(kind, BURST, false);
    const s = await singles(kind);
    progress(`one address p50 ${median(s.latencies).toFixed(2)} ms, p99 ${percentile(s.latencies, 99).toFixed(2)} ms`);
    const small: number[] = [];
    for (let run = 0; run < BURSTS; run++) small.push((await burst(kind, BURST, false)).burstMs);
    progress(`bursts of ${BURST}: ${small.map((x) => x.toFixed(1)).join(' ')} ms`);
    const big: number[] = [];
    const expiry: number[] = [];
    for (let run = 0; run < BIG_BURSTS; run++) {
      const result = await burst(kind, BIG_BURST, true);
      big.push(result.burstMs);
      expiry.push(result.expiryMs!);
      progress(`burst of ${BIG_BURST} ${result.burstMs.toFixed(0)} ms, expiry ${result.expiryMs!.toFixed(0)} ms`);
    }
    rows.push([
      KINDS[kind],
      `${s.first.toFixed(2)} ms`,
      `${median(s.latencies).toFixed(2)} ms`,
      `${percentile(s.latencies, 99).toFixed(2)} ms`,
      `${Math.max(...s.latencies).toFixed(2)} ms`,
      spread(small),
      spread(big),
      spread(expiry),
    ]);
    raw.push(
      `${kind}: bursts of ${BURST} [${small.map((x) => x.toFixed(2)).join(', ')}] ms; of ${BIG_BURST} [${big.map((x) => x.toFixed(0)).join(', ')}] ms; ` +
        `expiry [${expiry.map((x) => x.toFixed(0)).join(', ')}] ms; one address p90 ${percentile(s.latencies, 90).toFixed(2)} ms`,
    );
  }
  printTable(
    [
      'backend',
      'first answer after start',
      `one address p50 (${SINGLES})`,
      'p99',
      'max',
      `burst of ${BURST.toLocaleString('en')}, median of ${BURSTS} (min–max)`,
      `burst of ${BIG_BURST.toLocaleString('en')}, median of ${BIG_BURSTS} (min–max)`,
      `expiry of ${(BIG_BURST + 1).toLocaleString('en')}, median of ${BIG_BURSTS} (min–max)`,
    ],
    rows,
  );
  console.log('');
  for (const line of raw) console.log(line);
}

async function main(): Promise<void> {
  if (isInside()) return inside();
  await rerunInNamespace('ohn-backends', import.meta.url, [String(SINGLES), String(BURSTS), String(BIG_BURSTS)]);
}

await main();
