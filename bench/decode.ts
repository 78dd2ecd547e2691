/**
 * Decode throughput: dnstap CLIENT_RESPONSE frames per second through the real Unix-socket
 * path into decode + answer extraction + policy, the firewall replaced by a counting sink.
 * Peer: the golang-dnstap reader (`dnstap -u SOCKET -q`) on the same stream, same producer.
 *
 *   npx tsx bench/decode.ts [frames=200000] [runs=5]
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLOW, MIXES, recordedBlock } from './frames.js';
import { median, printTable } from './stats.js';

const FRAMES = Number(process.argv[2] ?? 200_000);
const RUNS = Number(process.argv[3] ?? 5);
const PRODUCER = fileURLToPath(new URL('./producer.mjs', import.meta.url));
/** The hot path as users run it: compiled dist/ in a plain node process (reader.mjs says why). */
const READER = fileURLToPath(new URL('./reader.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist', import.meta.url));

async function produce(socket: string, blockFile: string): Promise<{ frames: number; seconds: number }> {
  const { stdout } = await execa(process.execPath, [PRODUCER, socket, blockFile, String(FRAMES)]);
  return JSON.parse(stdout);
}

async function ours(dir: string, blockFile: string): Promise<number> {
  const socket = join(dir, 'ours.sock');
  const reader = execa(process.execPath, [READER, 'socket', DIST, socket, ...ALLOW], { reject: false });
  try {
    await new Promise<void>((resolve, reject) => {
      reader.stdout!.once('data', () => resolve());
      reader.once('exit', () => reject(new Error('reader.mjs ended before it listened')));
    });
    const result = await produce(socket, blockFile);
    reader.kill('SIGTERM');
    const { stdout, stderr } = await reader;
    const counts = JSON.parse(stdout.split('\n').at(-1) ?? '') as Record<'allow' | 'deny' | 'skip', number>;
    if (stderr) throw new Error(`reader.mjs: ${stderr}`);
    if (counts.allow + counts.deny !== result.frames) throw new Error(`decided ${JSON.stringify(counts)} of ${result.frames} frames`);
    return result.frames / result.seconds;
  } finally {
    reader.kill('SIGKILL');
    await rm(socket, { force: true });
  }
}

async function peer(dir: string, blockFile: string): Promise<number> {
  const socket = join(dir, 'peer.sock');
  const reader = execa('dnstap', ['-u', socket, '-q'], { stdout: 'ignore', reject: false });
  try {
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    const result = await produce(socket, blockFile);
    return result.frames / result.seconds;
  } finally {
    reader.kill('SIGTERM');
    await reader;
    await rm(socket, { force: true });
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-bench-decode-'));
  try {
    const hasPeer = (await execa('sh', ['-c', 'command -v dnstap'], { reject: false })).exitCode === 0;
    const rows: string[][] = [];
    for (const mix of MIXES) {
      const blockFile = join(dir, `block-${mix.allowedEvery}.bin`);
      await writeFile(blockFile, recordedBlock(mix.allowedEvery));
      const rates: Record<string, number[]> = { 'on-his-name (decode + CNAME chain + policy)': [] };
      if (hasPeer) rates['golang-dnstap `dnstap -u SOCKET -q`'] = [];
      for (let run = 0; run < RUNS; run++) {
        rates['on-his-name (decode + CNAME chain + policy)']!.push(await ours(dir, blockFile));
        if (hasPeer) rates['golang-dnstap `dnstap -u SOCKET -q`']!.push(await peer(dir, blockFile));
        process.stderr.write(`${mix.label}: run ${run + 1}/${RUNS} done\n`);
      }
      for (const [reader, r] of Object.entries(rates)) {
        rows.push([mix.label, reader, ...[median(r), Math.min(...r), Math.max(...r)].map((x) => Math.round(x).toLocaleString('en'))]);
      }
    }
    printTable(['stream', 'reader', `frames/s (median of ${RUNS} × ${FRAMES})`, 'min', 'max'], rows);
    if (!hasPeer) console.log('(peer not run: apt-get install golang-github-dnstap-golang-dnstap-cli)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
