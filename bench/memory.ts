/**
 * Memory: resident set size with 100,000 tracked addresses, and after a long burst of
 * answers (no growth once the burst ends). The whole pipeline runs in process: the real
 * socket listener, decode, policy and the Firewall, with the kernel replaced by a fake
 * that takes every restore (what we measure is our own memory, not iptables').
 *
 *   npx tsx bench/memory.ts [addresses=100000]
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { decide } from '../src/decision.js';
import { Firewall } from '../src/firewall/firewall.js';
import { listenFrameStreams } from '../src/framestream/listener.js';
import { Policy } from '../src/policy/policy.js';
import { clientResponse } from '../test/support/dnstap.js';
import { fakeIptables } from '../test/support/iptables.js';
import { encodeData } from '../src/framestream/control.js';
import { printTable } from './stats.js';

const ADDRESSES = Number(process.argv[2] ?? 100_000);
const log = pino({ level: 'silent' });
const PRODUCER = fileURLToPath(new URL('./producer.mjs', import.meta.url));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function settle(): { rss: number; heap: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed };
}

function frames(from: number, count: number): Buffer[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    const name = `host${i}.allowed.example`;
    return clientResponse('172.18.0.2', name, [{ type: 'A', name, ttl: 300, data: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` }]);
  });
}

/** Writes the recorded stream, then measures a fresh reader process that never built it. */
async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-memory-'));
  try {
    const blockFile = join(dir, 'block.bin');
    await writeFile(blockFile, Buffer.concat(frames(0, ADDRESSES).map((f) => encodeData(f))));
    const self = fileURLToPath(import.meta.url);
    await execa(process.execPath, ['--expose-gc', '--import', 'tsx', self, String(ADDRESSES), '--reader', blockFile, dir], { stdio: 'inherit' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function reader(blockFile: string, dir: string): Promise<void> {
  const idle = settle();
  const kernel = fakeIptables();
  // The fake keeps the whole chain as text; ours is measured, so the fake keeps nothing.
  const runner = { list: kernel.runner.list, restore: async () => undefined };
  const firewall = new Firewall({ runner, layout: { bridge: 'br-bench', ports: [80, 443] }, log, maxIps: ADDRESSES });
  await firewall.start();
  const policy = Policy.compile(['**.allowed.example.']);
  const listener = await listenFrameStreams({
    path: join(dir, 'dnstap.sock'),
    log,
    onData: (payload) => {
      const d = decide(payload, policy);
      if (d.outcome === 'allow') for (const r of d.ipv4) firewall.allow(r.address, d.name);
    },
  });
  // The producer runs in its own process, so only the reader's memory is measured.
  const send = async () => {
    await execa(process.execPath, [PRODUCER, listener.path, blockFile, String(ADDRESSES)]);
    await firewall.settled();
  };
  try {
    await send();
    const tracked = settle();
    // Bursts of answers for addresses already open: the steady state of a busy host.
    for (let round = 0; round < 3; round++) await send();
    const afterBurst = settle();
    for (let round = 0; round < 3; round++) await send();
    const afterSecondBurst = settle();
    if (firewall.allowedCount !== ADDRESSES) throw new Error(`tracked ${firewall.allowedCount} of ${ADDRESSES}`);
    printTable(
      ['moment', 'resident memory (RSS)', 'live JS heap after GC'],
      [
        ['started, nothing tracked', idle],
        [`${ADDRESSES.toLocaleString('en')} addresses tracked`, tracked],
        [`after a burst of ${(3 * ADDRESSES).toLocaleString('en')} more answers`, afterBurst],
        ['after a second such burst', afterSecondBurst],
      ].map(([label, m]) => [label as string, mb((m as { rss: number }).rss), mb((m as { heap: number }).heap)]),
    );
  } finally {
    await listener.close();
  }
}

const readerAt = process.argv.indexOf('--reader');
await (readerAt > 0 ? reader(process.argv[readerAt + 1]!, process.argv[readerAt + 2]!) : main());
