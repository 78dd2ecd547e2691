/**
 * Memory: what the daemon keeps per open address, and that it stays bounded by --max-ips
 * however many distinct addresses pass through. The reader (bench/memory-reader.mjs) runs
 * the compiled pipeline in plain node: the real socket listener, decode, policy and the
 * Firewall with --max-ips ADDRESSES, the kernel replaced by a runner that takes every restore
 * (what we measure is our own memory, not iptables'). A producer process sends the answers.
 *
 * Every round carries ADDRESSES answers that no earlier round had, each with its own name:
 * the first fills the firewall, each later one evicts as many as it opens. So two bursts of
 * three rounds each push 600,000 more addresses and names through a firewall that holds
 * 100,000, and a per-address leak of even 50 bytes would show as 30 MB of heap. To see what
 * a leak looks like, LEAK=1 makes the reader also keep every address and name it is given in
 * a Map of its own (an unbounded cache): its heap then grows with every round.
 *
 *   npm run build && npx tsx bench/memory.ts [addresses=100000]
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientResponse } from '../test/support/dnstap.js';
import { encodeData } from '../src/framestream/control.js';
import { printTable } from './stats.js';

const ADDRESSES = Number(process.argv[2] ?? 100_000);
/** The first fills the firewall; then two bursts of three. */
const ROUNDS = 7;
const PRODUCER = fileURLToPath(new URL('./producer.mjs', import.meta.url));
const READER = fileURLToPath(new URL('./memory-reader.mjs', import.meta.url));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Answer `i`: its own name and address, from 11.0.0.0 up (ordinary unicast; no packet is ever sent to it). */
function frame(i: number): Buffer {
  const name = `host${i}.allowed.example`;
  return clientResponse('172.18.0.2', name, [{ type: 'A', name, ttl: 300, data: `${11 + (i >>> 24)}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }]);
}

interface Moment {
  rss: number;
  heap: number;
  tracked: number;
  evicted: number;
}

/** Writes one recorded stream per round, then measures a fresh reader process that never built them. */
async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-memory-'));
  try {
    const blocks: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const file = join(dir, `round-${round}.bin`);
      const frames: Buffer[] = [];
      for (let k = 0; k < ADDRESSES; k++) frames.push(encodeData(frame(round * ADDRESSES + k)));
      await writeFile(file, Buffer.concat(frames));
      blocks.push(file);
    }
    const { stdout } = await execa(process.execPath, ['--expose-gc', READER, String(ADDRESSES), dir, PRODUCER, ...blocks], { stderr: 'inherit' });
    const m = JSON.parse(stdout) as Record<'idle' | 'tracked' | 'afterBurst' | 'afterSecondBurst', Moment> & { peakRss: number; peakHeap: number; leak: boolean };
    const burst = (3 * ADDRESSES).toLocaleString('en');
    printTable(
      ['moment', 'addresses open', 'evicted so far', 'resident memory (RSS)', 'live JS heap after GC'],
      (
        [
          ['started, nothing tracked', m.idle],
          [`${ADDRESSES.toLocaleString('en')} answers, each a new address`, m.tracked],
          [`after a burst of ${burst} more, each a new address`, m.afterBurst],
          [`after a second burst of ${burst} new addresses`, m.afterSecondBurst],
        ] as const
      ).map(([label, at]) => [label, at.tracked.toLocaleString('en'), at.evicted.toLocaleString('en'), mb(at.rss), mb(at.heap)]),
    );
    const perAddress = (m.tracked.heap - m.idle.heap) / ADDRESSES;
    process.stdout.write(`\npeak RSS of the reader: ${mb(m.peakRss)}, peak JS heap (garbage included, sampled every 20 ms): ${mb(m.peakHeap)}; live heap per open address: ${Math.round(perAddress)} bytes${m.leak ? ' (LEAK=1: the reader also kept every answer in a Map)' : ''}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
