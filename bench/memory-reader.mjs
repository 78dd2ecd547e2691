// The reader half of bench/memory.ts, in plain node on the compiled dist/ (what users run),
// so that the figure carries no TypeScript loader: the real listener, decode, policy and
// Firewall, the kernel replaced by a runner that accepts every restore and keeps nothing.
//
//   node --expose-gc bench/memory-reader.mjs ADDRESSES BLOCK_FILE DIR PRODUCER
//
// Prints one JSON line: the RSS and live heap (after GC) at each moment.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { decide } from '../dist/pipeline/decision.js';
import { Firewall } from '../dist/firewall/firewall.js';
import { listenFrameStreams } from '../dist/framestream/listener.js';
import { Patterns } from '../dist/policy/patterns.js';

const [addresses, blockFile, dir, producer] = [Number(process.argv[2]), process.argv[3], process.argv[4], process.argv[5]];
const run = promisify(execFile);

function settle() {
  globalThis.gc();
  globalThis.gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heap: heapUsed };
}

const log = pino({ level: 'silent' });
const idle = settle();
const runner = { list: async () => ['-N DOCKER-USER'], restore: async () => undefined };
const firewall = new Firewall({ runner, layout: { bridge: 'br-bench', ports: [80, 443] }, log, maxIps: addresses });
await firewall.start();
const policy = Patterns.compile(['**.allowed.example.']);
const listener = await listenFrameStreams({
  path: join(dir, 'dnstap.sock'),
  log,
  onData: (payload) => {
    const d = decide(payload, policy);
    if (d.outcome === 'allow') for (const r of d.ipv4) firewall.allow(r.address, d.name, r.ttl);
  },
});
// The producer runs in its own process, so only the reader's memory is measured.
const send = async () => {
  await run(process.execPath, [producer, listener.path, blockFile, String(addresses)], { maxBuffer: 1 << 20 });
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
  if (firewall.allowedCount !== addresses) throw new Error(`tracked ${firewall.allowedCount} of ${addresses}`);
  process.stdout.write(`${JSON.stringify({ idle, tracked, afterBurst, afterSecondBurst, peakRss: process.resourceUsage().maxRSS * 1024 })}\n`);
} finally {
  await listener.close();
  firewall.stop();
}
