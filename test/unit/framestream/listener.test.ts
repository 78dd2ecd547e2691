import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/util/errors.js';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { listenFrameStreams, type FrameStreamListener } from '../../../src/framestream/listener.js';
import { bidirectionalStream, unidirectionalStream } from '../../support/framestream.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer, until } from '../../support/socket.js';

let dir: string;
let listener: FrameStreamListener | undefined;
let received: string[];
const { log, lines } = recordingLogger();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-listener-'));
  received = [];
  lines.length = 0;
});
afterEach(async () => {
  await listener?.close();
  listener = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function listen(extra: { maxDataBytes?: number } = {}) {
  listener = await listenFrameStreams({
    path: join(dir, 'sub', 'dnstap.sock'),
    log,
    onData: (payload, producer) => received.push(`${producer.id}:${payload.toString()}`),
    ...extra,
  });
  return listener;
}

describe('listenFrameStreams', () => {
  it('creates the socket owner-only (0600) in a directory it makes', async () => {
    const { path } = await listen();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('speaks the bidirectional handshake: ACCEPT after READY, FINISH after STOP, then closes', async () => {
    const { path } = await listen();
    const producer = await connectProducer(path);
    await producer.write(encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]));
    await until(() => producer.received().length > 0);
    expect(producer.received()).toEqual(encodeControl(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]));
    await producer.write(bidirectionalStream([Buffer.from('a'), Buffer.from('b')]).subarray(encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]).length));
    await producer.closed;
    expect(producer.received()).toEqual(
      Buffer.concat([encodeControl(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]), encodeControl(ControlType.FINISH)]),
    );
    expect(received).toEqual(['1:a', '1:b']);
  });

  it('reads unidirectional streams and several producers at once', async () => {
    const { path } = await listen();
    const [one, two] = await Promise.all([connectProducer(path), connectProducer(path)]);
    const streamOne = unidirectionalStream([Buffer.from('x1'), Buffer.from('x2')]);
    const streamTwo = unidirectionalStream([Buffer.from('y1')]);
    // Interleave the two producers byte by byte.
    for (let i = 0; i < Math.max(streamOne.length, streamTwo.length); i++) {
      if (i < streamOne.length) await one!.write(streamOne.subarray(i, i + 1));
      if (i < streamTwo.length) await two!.write(streamTwo.subarray(i, i + 1));
    }
    await Promise.all([one!.closed, two!.closed]);
    expect(received.sort()).toEqual(['1:x1', '1:x2', '2:y1'].sort());
  });

  it('closes only the producer that breaks the protocol; the others keep being served', async () => {
    const { path } = await listen();
    const good = await connectProducer(path);
    const bad = await connectProducer(path);
    await good.write(encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]));
    await bad.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await bad.closed;
    await good.write(encodeData(Buffer.from('still here')));
    await until(() => received.length === 1);
    expect(received).toEqual(['1:still here']);
    expect(listener!.stats.protocolErrors).toBe(1);
    expect(lines.some((l) => l.msg.includes('protocol error'))).toBe(true);
    good.socket.destroy();
  });

  it('refuses data before START', async () => {
    const { path } = await listen();
    const producer = await connectProducer(path);
    await producer.write(encodeData(Buffer.from('early')));
    await producer.closed;
    expect(received).toEqual([]);
    expect(lines.find((l) => l.msg.includes('protocol error'))).toMatchObject({ reason: expect.stringMatching(/before START/) });
  });

  it('skips an oversized frame with a log line and keeps the connection', async () => {
    const { path } = await listen({ maxDataBytes: 8 });
    const producer = await connectProducer(path);
    await producer.write(unidirectionalStream([Buffer.alloc(64, 1), Buffer.from('small')]));
    await producer.closed;
    expect(received).toEqual(['1:small']);
    expect(listener!.stats.oversizedFrames).toBe(1);
    expect(lines.some((l) => l.msg.includes('oversized'))).toBe(true);
  });

  it('logs a producer that disconnects in the middle of a frame', async () => {
    const { path } = await listen();
    const producer = await connectProducer(path);
    await producer.write(Buffer.concat([encodeControl(ControlType.START), encodeData(Buffer.from('cut short')).subarray(0, 6)]));
    producer.socket.end();
    await until(() => lines.some((l) => l.msg.includes('middle of a frame')));
  });

  it('replaces a stale socket file left by a crash', async () => {
    const path = join(dir, 'stale.sock');
    const server = createServer();
    await new Promise<void>((r) => server.listen(path, r));
    // Simulate a crash: the file stays but nothing listens. Closing unlinks it, so re-create a dead one.
    await new Promise<void>((r) => server.close(() => r()));
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(path, r));
    (dead as unknown as { _handle: { close(): void } })._handle.close();
    listener = await listenFrameStreams({ path, log, onData: () => undefined });
    expect((await stat(path)).isSocket()).toBe(true);
  });

  it('refuses a socket that a running instance still listens on', async () => {
    const { path } = await listen();
    await expect(listenFrameStreams({ path, log, onData: () => undefined })).rejects.toThrow(ConfigError);
    await expect(listenFrameStreams({ path, log, onData: () => undefined })).rejects.toThrow(/already running/);
  });

  it('listens on TCP on loopback and serves producers as on the Unix socket', async () => {
    listener = await listenFrameStreams({
      endpoint: { transport: 'tcp', host: '127.0.0.1', port: 0 },
      log,
      onData: (payload, producer) => received.push(`${producer.id}:${payload.toString()}`),
    });
    const { endpoint } = listener;
    if (endpoint.transport !== 'tcp') throw new Error('expected a TCP endpoint');
    expect(endpoint.port).toBeGreaterThan(0);
    expect(listener.path).toBe(`tcp://127.0.0.1:${endpoint.port}`);
    const producer = await connectProducer({ host: '127.0.0.1', port: endpoint.port });
    await producer.write(bidirectionalStream([Buffer.from('over'), Buffer.from('tcp')]));
    await producer.closed;
    expect(received).toEqual(['1:over', '1:tcp']);
    expect(producer.received()).toEqual(Buffer.concat([encodeControl(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]), encodeControl(ControlType.FINISH)]));
    expect(lines.find((l) => l.msg === 'listening for dnstap over TCP')).toMatchObject({ address: listener.path });
    expect(lines.some((l) => l.level >= 40)).toBe(false); // loopback: no warning
  });

  it('says which TCP port is taken, and how to fix it', async () => {
    listener = await listenFrameStreams({ endpoint: { transport: 'tcp', host: '127.0.0.1', port: 0 }, log, onData: () => undefined });
    const taken = listener.endpoint;
    await expect(listenFrameStreams({ endpoint: taken, log, onData: () => undefined })).rejects.toThrow(ConfigError);
    await expect(listenFrameStreams({ endpoint: taken, log, onData: () => undefined })).rejects.toThrow(/is in use by another process: choose another --listen port/);
  });

  it('refuses to replace a file that is not a socket', async () => {
    const path = join(dir, 'not-a-socket');
    await writeFile(path, 'x');
    await expect(listenFrameStreams({ path, log, onData: () => undefined })).rejects.toThrow(/is not a socket/);
  });
});
