/**
 * decide() alone: the decode benchmark's frames (bench/frames.ts) in a loop, without the
 * socket and the producer, in a plain node process (bench/reader.mjs). For comparing builds
 * on a busy machine, where the socket benchmark's spread is wide: give each build's dist/
 * directory; each run is a fresh process and the builds take turns. To profile, run
 * reader.mjs's loop mode under `node --cpu-prof`.
 *
 *   npx tsx bench/decide.ts [frames=1000000] [runs=5] [DIST...=dist]
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLOW, MIXES, recordedBlock } from './frames.js';
import { median, printTable } from './stats.js';

const FRAMES = Number(process.argv[2] ?? 1_000_000);
const RUNS = Number(process.argv[3] ?? 5);
const DISTS = process.argv.length > 4 ? process.argv.slice(4) : [fileURLToPath(new URL('../dist', import.meta.url))];
const READER = fileURLToPath(new URL('./reader.mjs', import.meta.url));

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-decide-'));
  try {
    const rows: string[][] = [];
    for (const mix of MIXES) {
      const blockFile = join(dir, `block-${mix.allowedEvery}.bin`);
      await writeFile(blockFile, recordedBlock(mix.allowedEvery));
      const rates = DISTS.map(() => [] as number[]);
      for (let run = 0; run < RUNS; run++) {
        for (const [b, dist] of DISTS.entries()) {
          const { stdout } = await execa(process.execPath, [READER, 'loop', dist, blockFile, String(FRAMES), ...ALLOW]);
          rates[b]!.push(Number(stdout));
        }
        process.stderr.write(`${mix.label}: run ${run + 1}/${RUNS} done\n`);
      }
      rates.forEach((r, b) => rows.push([mix.label, DISTS[b]!, ...[median(r), Math.min(...r), Math.max(...r)].map((x) => Math.round(x).toLocaleString('en'))]));
    }
    printTable(['stream', 'build', `decide() calls/s (median of ${RUNS} × ${FRAMES})`, 'min', 'max'], rows);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
