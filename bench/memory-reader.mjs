// The reader half of bench/memory.ts, in plain node on the compiled dist/ (what users run),
// so that the figure carries no TypeScript loader: the real listener, decode, policy and
// Firewall (--max-ips ADDRESSES), the kernel replaced by a runner that accepts every restore
// and keeps nothing. Each BLOCK_FILE is one round of answers, every one a new address.
//
//   node --expose-gc bench/memory-reader.mjs ADDRESSES DIR PRODUCER BLOCK_FILE...
//
// LEAK=1 also keeps every address and name in a Map that never shrinks, to show what a leak
// looks like in the figures. Prints one JSON line: the RSS, live heap (after GC), open and
// evicted addresses at each moment, and the peaks of RSS and of the heap (garbage included).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { decide, onePolicy } from '../dist/pipeline/decision.js';
import { Firewall } from '../dist/firewall/firewall.js';
import { listenFrameStreams } from '../dist/framestream/listener.js';
import { Patterns } from '../dist/policy/patterns.js';

const [addresses, dir, producer, ...blocks] = [Number(process.argv[2]), process.argv[3], process.argv[4], ...process.argv.slice(5)];
const run = promisify(execFile);
const leak = process.env.LEAK === '1' ? new Map() : undefined;

const log = pino({ level: 'silent' });
const runner = { list: async () => ['-N DOCKER-USER', '-A FORWARD -j DOCKER-USER'], restore: async () => undefined };
const layout = { bridge: 'br-bench', ports: [80, 443].map((port) => ({ protocol: 'tcp', port })), subnets: ['192.0.2.0/24'], dns: [{ address: '192.0.2.1', port: 53 }], hostPorts: [] };
const firewall = new Firewall({ runner, layout, log, maxIps: addresses });

function settle() {
  globalThis.gc();
  globalThis.gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heap: heapUsed, tracked: firewall.trackedCount, evicted: firewall.stats.evicted };
}

const idle = settle();
// The high-water mark of the JS heap, garbage included, sampled while the answers pour in.
let peakHeap = 0;
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
}, 20);
await firewall.start();
const policy = onePolicy(Patterns.compile(['**.allowed.example.']));
const listener = await listenFrameStreams({
  path: join(dir, 'dnstap.sock'),
  log,
  onData: (payload) => {
    const d = decide(payload, policy);
    if (d.outcome !== 'allow') return;
    for (const r of d.ipv4) {
      firewall.allow(r.address, d.name, r.ttl);
      leak?.set(r.address, d.name);
    }
  },
});
// The producer runs in its own process, so only the reader's memory is measured.
const send = async (block) => {
  await run(process.execPath, [producer, listener.path, block, String(addresses)], { maxBuffer: 1 << 20 });
  await firewall.settled();
};
try {
  await send(blocks[0]);
  const tracked = settle();
  for (const block of blocks.slice(1, 4)) await send(block);
  const afterBurst = settle();
  for (const block of blocks.slice(4, 7)) await send(block);
  const afterSecondBurst = settle();
  if (firewall.allowedCount !== addresses) throw new Error(`${firewall.allowedCount} open, not ${addresses}`);
  if (firewall.stats.evicted !== addresses * (blocks.length - 1)) throw new Error(`${firewall.stats.evicted} evicted, not ${addresses * (blocks.length - 1)}`);
  const peakRss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${JSON.stringify({ idle, tracked, afterBurst, afterSecondBurst, peakRss, peakHeap, leak: leak !== undefined })}\n`);
} finally {
  clearInterval(sampler);
  await listener.close();
  firewall.stop();
}
