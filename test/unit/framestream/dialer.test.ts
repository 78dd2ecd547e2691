/**
 * The dialer against a fake listening producer (test/support/listening-producer.ts) on a
 * real Unix socket and real TCP on loopback: the handshake, producers that restart, crash
 * or vanish mid-frame, and the few log lines an operator sees meanwhile.
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
import { listeningProducer, type ListeningProducer } from '../../support/listening-producer.js';
import { recordingLogger } from '../../support/log.js';
import { until } from '../../support/socket.js';

let dir: string;
let dialer: FrameStreamDialer | undefined;
let producer: ListeningProducer | undefined;
let received: string[];
const { log, lines } = recordingLogger();
/** Short steps so that a test sees several retries in a fraction of a second. */
const fast = { initialMs: 10, maxMs: 40 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-dialer-'));
  received = [];
  lines.length = 0;
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
  dialer = connectFrameStreams({ endpoint, log, backoff: fast, onData: (payload, p) => received.push(`${p.id}:${payload.toString()}`) });
  return dialer;
}

const said = (msg: string) => lines.filter((l) => l.msg.startsWith(msg));

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
    await until(() => said('dnstap producer still away').length >= 3);
    expect(dialer!.connected).toBe(false);
    await producer.start();
    await until(() => producer!.streaming() === 1);
    producer.send(Buffer.from('after'));
    await until(() => received.length === 2);

    expect(received).toEqual(['1:before', '2:after']);
    expect(said('dnstap producer went away')).toHaveLength(1);
    expect(said('dnstap producer went away')[0]).toMatchObject({ level: 40, said: 'STOP', producer: expect.stringMatching(/^(unix|tcp):\/\//) });
    expect(said('dnstap producer is back')).toHaveLength(1);
    expect(said('dnstap producer is back')[0]!.awayMs).toEqual(expect.any(Number));
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
    await until(() => producer!.streaming() === 1);
    producer.send(Buffer.from('next'));
    await until(() => received.length === 2);
    expect(received).toEqual(['1:whole', '2:next']);
  });
});

describe('connectFrameStreams', () => {
  it('waits for a producer that is not there yet, saying so once', async () => {
    const endpoint = unixEndpoint();
    dial(endpoint);
    await until(() => said('dnstap producer still away').length >= 3);
    expect(said('dnstap producer not reachable yet')).toHaveLength(1);
    expect(said('dnstap producer not reachable yet')[0]).toMatchObject({ reason: 'ENOENT' });
    producer = await listeningProducer(endpoint);
    await until(() => producer!.streaming() === 1);
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
      await until(() => connections >= 3);
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
      await until(() => connections >= 2, 5_000);
      expect(said('dnstap producer not reachable yet')[0]!.reason).toMatch(/closed in the handshake \(phase refused\)/);
    } finally {
      await dialer?.close();
      for (const s of held) s.destroy(); // a paused socket never sees our end
      await new Promise<void>((r) => stubborn.close(() => r()));
    }
  });

  it('gives up on a listener that never starts the handshake, and says what it expected', async () => {
    const { createServer } = await import('node:net');
    const path = join(dir, 'silent.sock');
    let connections = 0;
    const silent = createServer((s) => {
      connections++;
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(path, r));
    try {
      dialer = connectFrameStreams({ endpoint: { transport: 'unix', path }, log, backoff: fast, handshakeTimeoutMs: 30, onData: () => undefined });
      await until(() => connections >= 2);
      expect(said('dnstap producer not reachable yet')[0]!.reason).toMatch(/no Frame Streams handshake within 30 ms: is this a dnstap producer/);
    } finally {
      await dialer?.close();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('keeps a started stream that stays quiet: no DNS traffic is no reason to hang up', async () => {
    producer = await listeningProducer(unixEndpoint());
    dialer = connectFrameStreams({ endpoint: producer.endpoint, log, backoff: fast, handshakeTimeoutMs: 30, onData: (p) => received.push(p.toString()) });
    await until(() => producer!.streaming() === 1);
    await new Promise((r) => setTimeout(r, 120));
    producer.send(Buffer.from('later'));
    await until(() => received.length === 1);
    expect(producer.accepted).toBe(1);
  });

  it('stops dialling when closed', async () => {
    producer = await listeningProducer(unixEndpoint());
    dial(producer.endpoint);
    await until(() => producer!.streaming() === 1);
    await dialer!.close();
    await until(() => producer!.streaming() === 0);
    await producer.crash();
    await producer.start();
    await new Promise((r) => setTimeout(r, 100)); // ten backoff steps: a live dialer would be back by now
    expect(producer.accepted).toBe(1);
    expect(said('dnstap producer went away')).toHaveLength(0);
  });
});
