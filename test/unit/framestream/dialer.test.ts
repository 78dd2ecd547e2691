/**
 * The dialer against a fake listening producer (test/support/listening-producer.ts) on a
 * real Unix socket and real TCP on loopback: the handshake, producers that restart, crash
 * or vanish mid-frame, and the few log lines an operator sees meanwhile.
 *
 * Sockets are real, time is not: the dialer's backoff and deadlines run on a FakeClock, so
 * a retry happens when the test moves the clock, and "it did not happen" is checked by
 * moving the clock past the moment it would have.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { connectFrameStreams, type FrameStreamDialer } from '../../../src/framestream/dialer.js';
import type { Endpoint } from '../../../src/framestream/endpoint.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { reconnectDelay } from '../../../src/util/backoff.js';
import { FakeClock } from '../../support/clock.js';
import { listeningProducer, type ListeningProducer } from '../../support/listening-producer.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer, until } from '../../support/socket.js';

let dir: string;
let dialer: FrameStreamDialer | undefined;
let producer: ListeningProducer | undefined;
let received: string[];
let clock: FakeClock;
const { log, lines } = recordingLogger();
/** Retries 10-40 ms apart: far below the dialer's other timers (connect 5 s, handshake 10 s, summaries and a refused producer's grace 1 s). */
const fast = { initialMs: 10, maxMs: 40 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-dialer-'));
  received = [];
  lines.length = 0;
  clock = new FakeClock();
});
afterEach(async () => {
  await dialer?.close();
  await producer?.crash();
  dialer = producer = undefined;
  await rm(dir, { recursive: true, force: true });
});

const unixEndpoint = (): Endpoint => ({ transport: 'unix', path: join(dir, 'coredns-dnstap.sock') });
const tcpEndpoint: Endpoint = { transport: 'tcp', host: '127.0.0.1', port: 0 };

function dial(endpoint: Endpoint) {
  dialer = connectFrameStreams({ endpoint, log, backoff: fast, clock, onData: (payload, p) => received.push(`${p.id}:${payload.toString()}`) });
  return dialer;
}

const said = (msg: string) => lines.filter((l) => l.msg.startsWith(msg));

/** The dialer has set its next retry: nothing else it sets is this close. */
const retrySet = () => (clock.nextIn ?? Infinity) <= fast.maxMs;

/**
 * Let the dialer retry until `condition` holds. Each attempt is real I/O, so wait until the
 * attempt is over (its next retry is set) or the condition holds, then move the clock to the
 * retry. A dialer that retried without the clock would never set one, and this would time out.
 */
async function retryUntil(condition: () => boolean): Promise<void> {
  for (;;) {
    await until(() => condition() || retrySet());
    if (condition()) return;
    await clock.runNext();
  }
}

/**
 * Connect to a server that greets every connection (READY) and return once it has greeted
 * ours. A server accepts in order, so any dial made before the probe has been accepted by
 * then: "nothing dialled" is seen without waiting to see.
 */
async function probe(target: string | { host: string; port: number }): Promise<void> {
  const p = await connectProducer(target);
  await until(() => p.received().length > 0);
  p.socket.destroy();
}

/** How many connections `producer` accepted before a probe of ours (see probe()). */
async function acceptedBeforeProbe(producer: ListeningProducer): Promise<number> {
  const at = producer.endpoint;
  await probe(at.transport === 'unix' ? at.path : { host: at.host, port: at.port });
  return producer.accepted - 1;
}

describe.each([
  ['a Unix socket', unixEndpoint],
  ['TCP on loopback', () => tcpEndpoint],
])('connectFrameStreams over %s', (_, endpoint) => {
  it('answers READY with ACCEPT, and reads the frames that follow START', async () => {
    producer = await listeningProducer(endpoint());
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    expect(producer.replies[0]).toEqual({ type: ControlType.ACCEPT, contentTypes: [DNSTAP_CONTENT_TYPE] });
    producer.send(Buffer.from('one'));
    producer.send(Buffer.from('two'));
    await until(() => received.length === 2);
    expect(received).toEqual(['1:one', '1:two']);
    expect(dialer!.connected).toBe(true);
    expect(said('connected to the dnstap producer')).toHaveLength(1);
  });

  it('reconnects to a producer that restarts and keeps receiving; one line when it goes, one when it is back', async () => {
    producer = await listeningProducer(endpoint());
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    producer.send(Buffer.from('before'));
    await until(() => received.length === 1);

    await producer.stop();
    expect(producer.replies.map((r) => r.type)).toEqual([ControlType.ACCEPT, ControlType.FINISH]);
    await until(() => said('dnstap producer went away').length === 1);
    const wentAway = clock.now();
    await retryUntil(() => said('dnstap producer still away').length >= 3);
    expect(dialer!.connected).toBe(false);
    await producer.start();
    await retryUntil(() => producer!.streaming() === 1);
    producer.send(Buffer.from('after'));
    await until(() => received.length === 2);

    expect(received).toEqual(['1:before', '2:after']);
    expect(said('dnstap producer went away')).toHaveLength(1);
    expect(said('dnstap producer went away')[0]).toMatchObject({ level: 40, said: 'STOP', producer: expect.stringMatching(/^(unix|tcp):\/\//) });
    expect(said('dnstap producer is back')).toHaveLength(1);
    expect(said('dnstap producer is back')[0]!.awayMs).toEqual(expect.any(Number));
    expect(said('dnstap producer is back')[0]!.awayMs).toBe(clock.now() - wentAway); // the backoff it waited, to the millisecond
    // At least three retries that failed and the one that did not, each at least half its backoff step.
    expect(clock.now() - wentAway).toBeGreaterThanOrEqual([0, 1, 2, 3].reduce((sum, attempt) => sum + reconnectDelay(attempt, fast, () => 0), 0));
  });

  it('survives a producer that crashes in the middle of a frame: the partial frame is dropped, the next connection read', async () => {
    producer = await listeningProducer(endpoint());
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    producer.send(Buffer.from('whole'));
    producer.sendRaw(encodeData(Buffer.from('cut short')).subarray(0, 7));
    await until(() => received.length === 1);
    await producer.crash();
    await until(() => said('dnstap producer went away').length === 1);
    expect(said('dnstap producer went away')[0]).toMatchObject({ said: 'nothing', midFrame: true });
    await producer.start();
    await retryUntil(() => producer!.streaming() === 1);
    producer.send(Buffer.from('next'));
    await until(() => received.length === 2);
    expect(received).toEqual(['1:whole', '2:next']);
  });
});

describe('connectFrameStreams', () => {
  it('waits for a producer that is not there yet, saying so once', async () => {
    const endpoint = unixEndpoint();
    dial(endpoint);
    await retryUntil(() => said('dnstap producer still away').length >= 3);
    expect(said('dnstap producer not reachable yet')).toHaveLength(1);
    expect(said('dnstap producer not reachable yet')[0]).toMatchObject({ reason: 'ENOENT' });
    expect(said('dnstap producer still away').every((l) => l.level === 20)).toBe(true); // the retries are debug lines
    producer = await listeningProducer(endpoint);
    await retryUntil(() => producer!.streaming() === 1);
    producer.send(Buffer.from('late'));
    await until(() => received.length === 1);
    expect(said('connected to the dnstap producer')).toHaveLength(1);
    expect(said('dnstap producer is back')).toHaveLength(0);
  });

  it('reads a producer that sends START without READY', async () => {
    producer = await listeningProducer(unixEndpoint(), { handshake: 'unidirectional' });
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    producer.send(Buffer.from('direct'));
    await until(() => received.length === 1);
    expect(received).toEqual(['1:direct']);
    expect(producer.replies).toEqual([]);
  });

  it('drops a producer that offers another content type, and retries with backoff rather than in a loop', async () => {
    const { createServer } = await import('node:net');
    const path = join(dir, 'wrong.sock');
    let connections = 0;
    const wrong = createServer((s) => {
      connections++;
      s.on('error', () => undefined);
      s.on('data', () => s.destroy()); // the bare ACCEPT: as fstrm's writer does, give up
      s.write(encodeControl(ControlType.READY, ['protobuf:something.Else']));
    });
    await new Promise<void>((r) => wrong.listen(path, r));
    try {
      dial({ transport: 'unix', path });
      await retryUntil(() => connections >= 3);
      // Backoff, not a loop: with the next retry set and the clock still, a probe is the only connection the server sees.
      await until(retrySet);
      const dialled = connections;
      await probe(path);
      expect(connections).toBe(dialled + 1);
      expect(received).toEqual([]);
      expect(dialer!.stats.protocolErrors).toBeGreaterThanOrEqual(2);
      expect(said('dnstap producer not reachable yet')).toHaveLength(1);
      expect(said('dnstap producer not reachable yet')[0]!.reason).toMatch(/closed in the handshake/);
      expect(said('connected to the dnstap producer')).toHaveLength(0);
    } finally {
      await dialer?.close();
      await new Promise<void>((r) => wrong.close(() => r()));
    }
  });

  it('hangs up on a refused producer that does not hang up itself, and dials again', async () => {
    const { createServer } = await import('node:net');
    const path = join(dir, 'stubborn.sock');
    let connections = 0;
    const held: Socket[] = [];
    const stubborn = createServer((s) => {
      connections++;
      held.push(s);
      s.on('error', () => undefined);
      s.write(encodeControl(ControlType.READY, ['protobuf:something.Else'])); // and never reads our ACCEPT
    });
    await new Promise<void>((r) => stubborn.listen(path, r));
    try {
      dial({ transport: 'unix', path });
      await until(() => dialer!.stats.protocolErrors === 1); // refused: we sent the bare ACCEPT and ended our side
      await clock.advance(999);
      expect(said('dnstap producer not reachable yet')).toHaveLength(0); // the connection stands until the grace is over
      await clock.advance(1); // the grace a refused producer has to hang up (REFUSED_GRACE_MS)
      await retryUntil(() => connections >= 2);
      expect(said('dnstap producer not reachable yet')[0]!.reason).toMatch(/closed in the handshake \(phase refused\)/);
    } finally {
      await dialer?.close();
      for (const s of held) s.destroy(); // a paused socket never sees our end
      await new Promise<void>((r) => stubborn.close(() => r()));
    }
  });

  it.each([
    ['its default deadline (HANDSHAKE_TIMEOUT_MS)', undefined, 10_000],
    ['handshakeTimeoutMs', 500, 500],
  ])('gives up on a listener that never starts the handshake, by %s, and says what it expected', async (_, handshakeTimeoutMs, deadline) => {
    const { createServer } = await import('node:net');
    const path = join(dir, 'silent.sock');
    let connections = 0;
    const silent = createServer((s) => {
      connections++;
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(path, r));
    try {
      const options = { endpoint: { transport: 'unix', path } as const, log, backoff: fast, clock, onData: () => undefined };
      dialer = connectFrameStreams(handshakeTimeoutMs === undefined ? options : { ...options, handshakeTimeoutMs });
      await until(() => dialer!.stats.connections === 1); // connected: the handshake's deadline runs from here
      await clock.advance(deadline - 1);
      expect(said('dnstap producer not reachable yet')).toHaveLength(0); // still waiting for READY
      await clock.advance(1);
      await until(() => said('dnstap producer not reachable yet').length === 1);
      await retryUntil(() => connections >= 2);
      expect(said('dnstap producer not reachable yet')[0]!.reason).toMatch(
        new RegExp(`no Frame Streams handshake within ${deadline} ms: is this a dnstap producer`),
      );
    } finally {
      await dialer?.close();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('times the handshake by silence, not in total: a slow producer that keeps talking is read', async () => {
    const { createServer } = await import('node:net');
    const path = join(dir, 'slow.sock');
    const held: Socket[] = [];
    const accepts: Buffer[] = [];
    const slow = createServer((s) => {
      held.push(s);
      s.on('error', () => undefined);
      s.on('data', (chunk: Buffer) => accepts.push(chunk));
    });
    await new Promise<void>((r) => slow.listen(path, r));
    try {
      dial({ transport: 'unix', path });
      await until(() => dialer!.stats.connections === 1 && held.length === 1);
      await clock.advance(9_000);
      held[0]!.write(encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]));
      await until(() => accepts.length > 0); // our ACCEPT
      await clock.advance(9_000); // 18 s since we connected, 9 s since READY
      expect(said('dnstap producer not reachable yet')).toHaveLength(0);
      held[0]!.write(Buffer.concat([encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]), encodeData(Buffer.from('slow'))]));
      await until(() => received.length === 1);
      expect(received).toEqual(['1:slow']);
      expect(dialer!.connected).toBe(true);
      await clock.advance(60_000); // started: no deadline any more
      expect(dialer!.connected).toBe(true);
      expect(lines.filter((l) => l.msg.includes('dnstap producer')).map((l) => l.msg)).toEqual(['connected to the dnstap producer']);
    } finally {
      await dialer?.close();
      for (const s of held) s.destroy();
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });

  it('keeps a started stream that stays quiet: no DNS traffic is no reason to hang up', async () => {
    producer = await listeningProducer(unixEndpoint());
    dialer = connectFrameStreams({ endpoint: producer.endpoint, log, backoff: fast, handshakeTimeoutMs: 30, clock, onData: (p) => received.push(p.toString()) });
    await until(() => producer!.streaming() === 1 && dialer!.connected);
    await clock.advance(60_000); // far past the handshake deadline, and past the default one too
    expect(dialer.connected).toBe(true);
    expect(said('dnstap producer went away')).toHaveLength(0);
    producer.send(Buffer.from('later'));
    await until(() => received.length === 1);
    expect(producer.accepted).toBe(1);
    expect(await acceptedBeforeProbe(producer)).toBe(1); // and no second connection under way
  });

  it('stops dialling when closed', async () => {
    producer = await listeningProducer(unixEndpoint());
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    await dialer!.close();
    await until(() => producer!.streaming() === 0);
    await producer.crash();
    await producer.start();
    await clock.advance(60_000); // far past every backoff step: a live dialer would have dialled again
    expect(producer.accepted).toBe(1);
    expect(await acceptedBeforeProbe(producer)).toBe(1); // nor is a dial under way
    expect(said('dnstap producer went away')).toHaveLength(0);
    expect(clock.pending).toBe(0);
  });

  it('stops dialling when closed while it waits to retry', async () => {
    const endpoint = unixEndpoint();
    dial(endpoint);
    await until(retrySet); // the first attempt failed (nothing listens yet) and the next is set
    await dialer!.close();
    producer = await listeningProducer(endpoint);
    await clock.advance(60_000);
    expect(await acceptedBeforeProbe(producer)).toBe(0);
    expect(said('dnstap producer not reachable yet')).toHaveLength(1);
    expect(said('dnstap producer still away')).toHaveLength(0);
  });
});
