// on-his-name's side of the decode benchmarks, in a plain `node` process as users run it:
// the compiled dist/ loaded as ES modules, with no TypeScript loader in between. Imported
// from a benchmark run by tsx, dist/ modules were recompiled by esbuild into CommonJS (as
// tsx's cache shows), every imported function then reached through a getter: not what runs.
//
//   node reader.mjs socket DIST SOCKET PATTERN...        decide every frame a producer sends;
//                                                      prints "ready", then the counts on SIGTERM
//   node reader.mjs loop DIST BLOCK_FILE COUNT PATTERN... decide() on BLOCK_FILE's frames COUNT
//                                                      times in a loop; prints calls per second
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, dist, ...rest] = process.argv.slice(2);
const from = (path) => import(pathToFileURL(resolve(dist, path)).href);
const { decide, onePolicy } = await from('pipeline/decision.js');
const { Patterns } = await from('policy/patterns.js');
/** Enough calls for the JIT to settle before the clock starts. */
const WARM_UP = 100_000;

if (mode === 'socket') {
  const [socket, ...patterns] = rest;
  const { listenFrameStreams } = await from('framestream/listener.js');
  const { pino } = await import('pino');
  const policy = onePolicy(Patterns.compile(patterns));
  const counts = { allow: 0, deny: 0, skip: 0 };
  const listener = await listenFrameStreams({ path: socket, log: pino({ level: 'silent' }), onData: (payload) => counts[decide(payload, policy).outcome]++ });
  process.once('SIGTERM', () => {
    void listener.close().then(() => {
      process.stdout.write(`${JSON.stringify(counts)}\n`);
      process.exit(0);
    });
  });
  process.stdout.write('ready\n');
} else if (mode === 'loop') {
  const [blockFile, count, ...patterns] = rest;
  const block = readFileSync(blockFile);
  const frames = [];
  for (let at = 0; at < block.length; at += 4 + block.readUInt32BE(at)) frames.push(block.subarray(at + 4, at + 4 + block.readUInt32BE(at)));
  const policy = onePolicy(Patterns.compile(patterns));
  const counts = { allow: 0, deny: 0, skip: 0 };
  for (let i = 0; i < WARM_UP; i++) counts[decide(frames[i % frames.length], policy).outcome]++;
  const started = process.hrtime.bigint();
  for (let i = 0; i < Number(count); i++) counts[decide(frames[i % frames.length], policy).outcome]++;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (counts.skip > 0) throw new Error(`skipped ${counts.skip} frames: the stream is not what the benchmark expects`);
  process.stdout.write(`${Number(count) / seconds}\n`);
} else {
  throw new Error(`unknown mode ${mode}: socket or loop`);
}
