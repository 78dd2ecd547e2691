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
import { pino } from 'pino';
import { encodeData } from '../src/framestream/control.js';
import { clientResponse } from '../test/support/dnstap.js';
import { median, printTable } from './stats.js';

/** The hot path as users run it: compiled dist/ (npm run build), not the TypeScript loader's transform of src/. */
const fromDist = (path: string): Promise<unknown> => import(new URL(`../dist/${path}`, import.meta.url).href);
const { decide } = (await fromDist('pipeline/decision.js')) as typeof import('../src/pipeline/decision.js');
const { listenFrameStreams } = (await fromDist('framestream/listener.js')) as typeof import('../src/framestream/listener.js');
const { Policy } = (await fromDist('policy/policy.js')) as typeof import('../src/policy/policy.js');

const FRAMES = Number(process.argv[2] ?? 200_000);
const RUNS = Number(process.argv[3] ?? 5);
const PRODUCER = fileURLToPath(new URL('./producer.mjs', import.meta.url));

/** 1,000 answers over 100 names, 1-3 addresses each; one in `allowedEvery` is for an allowed name. */
function recordedBlock(allowedEvery: number): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const name = `host${i % 100}.${i % allowedEvery === 0 ? 'allowed' : 'other'}.example`;
    const answers = Array.from({ length: 1 + (i % 3) }, (_, k) => ({ type: 'A' as const, name, ttl: 300, data: `198.51.${(i >> 8) & 255}.${(i + k) & 255}` }));
    frames.push(encodeData(clientResponse(`172.18.0.${2 + (i % 50)}`, name, answers)));
  }
  return Buffer.concat(frames);
}

async function produce(socket: string, blockFile: string): Promise<{ frames: number; seconds: number }> {
  const { stdout } = await execa(process.execPath, [PRODUCER, socket, blockFile, String(FRAMES)]);
  return JSON.parse(stdout);
}

async function ours(dir: string, blockFile: string): Promise<number> {
  const socket = join(dir, 'ours.sock');
  const policy = Policy.compile(['**.allowed.example.']);
  const counts = { allow: 0, deny: 0, skip: 0 };
  const listener = await listenFrameStreams({
    path: socket,
    log: pino({ level: 'silent' }),
    onData: (payload) => counts[decide(payload, policy).outcome]++,
  });
  try {
    const result = await produce(socket, blockFile);
    if (counts.allow + counts.deny !== result.frames) throw new Error(`decided ${JSON.stringify(counts)} of ${result.frames} frames`);
    return result.frames / result.seconds;
  } finally {
    await listener.close();
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

const MIXES = [
  { label: 'all answers allowed', allowedEvery: 1 },
  { label: 'one answer in 3 allowed', allowedEvery: 3 },
];

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
