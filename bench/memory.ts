/**
 * Memory: resident set size with 100,000 tracked addresses, and after a long burst of
 * answers (no growth once the burst ends). The reader (bench/memory-reader.mjs) runs the
 * compiled pipeline in plain node: the real socket listener, decode, policy and the
 * Firewall, with the kernel replaced by a runner that takes every restore (what we measure
 * is our own memory, not iptables'). A producer process sends the answers.
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
const PRODUCER = fileURLToPath(new URL('./producer.mjs', import.meta.url));
const READER = fileURLToPath(new URL('./memory-reader.mjs', import.meta.url));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

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
    const { stdout } = await execa(process.execPath, ['--expose-gc', READER, String(ADDRESSES), blockFile, dir, PRODUCER], { stderr: 'inherit' });
    const m = JSON.parse(stdout) as Record<'idle' | 'tracked' | 'afterBurst' | 'afterSecondBurst', { rss: number; heap: number }> & { peakRss: number };
    printTable(
      ['moment', 'resident memory (RSS)', 'live JS heap after GC'],
      [
        ['started, nothing tracked', m.idle],
        [`${ADDRESSES.toLocaleString('en')} addresses tracked`, m.tracked],
        [`after a burst of ${(3 * ADDRESSES).toLocaleString('en')} more answers`, m.afterBurst],
        ['after a second such burst', m.afterSecondBurst],
      ].map(([label, at]) => [label as string, mb((at as { rss: number }).rss), mb((at as { heap: number }).heap)]),
    );
    process.stdout.write(`peak RSS of the reader: ${mb(m.peakRss)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
