/**
 * Garbage soak: rounds of concurrent connections throwing random and mutated bytes at the
 * daemon's real socket while one good producer streams its answers. The good producer's
 * answers all arrive, nothing escapes, and the heap after many rounds is about what it was
 * after the first (a rough check for per-connection state that is never freed).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { clientResponse } from '../../support/dnstap.js';
import { bidirectionalStream, randomSplits, seededRandom } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { applyMutations, type Mutation } from '../../support/mutate.js';
import { connectProducer } from '../../support/socket.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let dir: string;
let daemon: Daemon | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-soak-'));
});
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await rm(dir, { recursive: true, force: true });
});

const ROUNDS = 6;
const CONNECTIONS = 40;
const GOOD_PER_ROUND = 400;

const goodAddress = (i: number) => `20.1.${(i >> 8) & 255}.${i & 255}`;
const goodAnswer = (i: number) => clientResponse('192.0.2.10', 'good.test', [{ type: 'A', name: 'good.test', data: goodAddress(i), ttl: 600 }]);

/** One connection's worth of garbage, of one of three kinds, from a seeded generator. */
function garbage(random: () => number): Buffer {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const kind = Math.floor(random() * 3);
  if (kind === 0) return bytes(Math.floor(random() * 4096));
  const handshake = Buffer.concat([encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]), encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE])]);
  // After a proper START: random frames, so the bytes reach the dnstap and DNS decoders.
  if (kind === 1) return Buffer.concat([handshake, ...Array.from({ length: 20 }, () => encodeData(bytes(1 + Math.floor(random() * 300))))]);
  const answers = Array.from({ length: 10 }, (_, i) =>
    clientResponse('192.0.2.66', `garbage${i}.test`, [{ type: 'A', name: `garbage${i}.test`, data: '203.0.113.9', ttl: 60 }]),
  );
  const mutations: Mutation[] = Array.from({ length: 1 + Math.floor(random() * 6) }, () => {
    const at = random();
    const pick = Math.floor(random() * 4);
    if (pick === 0) return { kind: 'flip', at, bit: Math.floor(random() * 8) };
    if (pick === 1) return { kind: 'u32', at, value: Math.floor(random() * 2 ** 32) };
    if (pick === 2) return { kind: 'insert', at, bytes: bytes(1 + Math.floor(random() * 8)) };
    return { kind: 'pointer-loop', at, back: Math.floor(random() * 16) };
  });
  return applyMutations(bidirectionalStream(answers), mutations);
}

async function throwGarbage(path: string, random: () => number): Promise<void> {
  const producer = await connectProducer(path);
  for (const chunk of randomSplits(garbage(random), random, 512)) {
    if (producer.socket.destroyed) break;
    await producer.write(chunk);
  }
  producer.socket.end();
  await producer.closed;
}

describe('garbage soak', () => {
  it("keeps serving a good producer among rounds of garbage connections, within a steady heap", async () => {
    const { log, lines } = recordingLogger('warn');
    const path = join(dir, 'dnstap.sock');
    const config = parseConfig(['--interface', 'br0', '--listen', path, '--reconcile-interval', '0', '--max-ips-per-name', '10000', 'good.test.'], {});
    daemon = await startDaemon(config, { runner: fakeIptables().runner, log });
    const random = seededRandom(20261123);
    const good = await connectProducer(path);
    await good.write(encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]));
    await good.write(encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]));

    let heapAfterFirst = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const sendGood = (async () => {
        for (let i = round * GOOD_PER_ROUND; i < (round + 1) * GOOD_PER_ROUND; i++) await good.write(encodeData(goodAnswer(i)));
      })();
      await Promise.all([sendGood, ...Array.from({ length: CONNECTIONS }, () => throwGarbage(path, random))]);
      await daemon.firewall.settled();
      gc();
      if (round === 0) heapAfterFirst = process.memoryUsage().heapUsed;
    }
    await good.write(encodeControl(ControlType.STOP));
    await good.closed;
    await daemon.firewall.settled();
    gc();
    const growth = process.memoryUsage().heapUsed - heapAfterFirst;

    const total = ROUNDS * GOOD_PER_ROUND;
    const missing = Array.from({ length: total }, (_, i) => goodAddress(i)).filter((a) => !daemon!.firewall.isAllowed(a));
    expect(missing).toEqual([]);
    expect(daemon.firewall.isAllowed('203.0.113.9')).toBe(false);
    expect(daemon.listener!.stats.connections).toBe(1 + ROUNDS * CONNECTIONS);
    expect(daemon.listener!.stats.protocolErrors).toBeGreaterThan(ROUNDS * CONNECTIONS * 0.3);
    expect(daemon.stats.decodeErrors).toBeGreaterThan(0);
    // Rough: five more rounds of garbage may not leave megabytes behind.
    expect(growth).toBeLessThan(16 * 1024 * 1024);
    // Anything but a DecodeError from the pipeline would be caught by the listener and logged as an error.
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    // Each kind of complaint is a few lines a second, not one per connection or frame.
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    expect(count('skipped a dnstap frame')).toBeLessThan(daemon.stats.decodeErrors / 4);
    expect(count('closing producer connection: Frame Streams protocol error')).toBeLessThan(daemon.listener!.stats.protocolErrors / 4);
    expect(lines.length).toBeLessThan(ROUNDS * CONNECTIONS / 2);
  }, 60_000);
});
