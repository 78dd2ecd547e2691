/**
 * The Unix-socket transport for Frame Streams: accepts any number of producers at once,
 * pipes each connection's bytes through its own FrameDecoder and handshake, and hands
 * data frames to `onData`. A producer that breaks the protocol loses its connection,
 * never the daemon or the other producers.
 */
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, ProtocolError } from '../errors.js';
import { LogSummary } from '../log-summary.js';
import { FrameDecoder, type Frame } from './decoder.js';
import { INITIAL_HANDSHAKE, acceptsData, stepHandshake, type HandshakeState } from './handshake.js';
import { DNSTAP_CONTENT_TYPE, MAX_DATA_FRAME_BYTES, controlTypeName } from './limits.js';

export interface Producer {
  /** A per-process connection number, for logs. */
  id: number;
}

export interface ListenerOptions {
  path: string;
  /** Owner of the socket, so that an unprivileged DNS server may connect. */
  socketUid?: number;
  socketGid?: number;
  log: Logger;
  onData: (payload: Buffer, producer: Producer) => void;
  maxDataBytes?: number;
}

export interface ListenerStats {
  connections: number;
  dataFrames: number;
  oversizedFrames: number;
  protocolErrors: number;
}

export interface FrameStreamListener {
  readonly path: string;
  readonly stats: Readonly<ListenerStats>;
  close(): Promise<void>;
}

const MAX_PRODUCERS = 256;

export async function listenFrameStreams(options: ListenerOptions): Promise<FrameStreamListener> {
  const { path, log } = options;
  await clearStaleSocket(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });

  const stats: ListenerStats = { connections: 0, dataFrames: 0, oversizedFrames: 0, protocolErrors: 0 };
  // A flood of garbage (many connections, or many oversized frames) must not flood the log.
  const warnings: Warnings = {
    protocol: new LogSummary(log, 'closing producer connection: Frame Streams protocol error'),
    oversized: new LogSummary(log, 'skipped an oversized data frame; a dnstap message never needs this much, check what writes to the socket'),
    midFrame: new LogSummary(log, 'producer disconnected in the middle of a frame; partial frame dropped'),
  };
  const open = new Set<Socket>();
  let nextId = 1;
  const server = createServer((socket) => {
    const producer = { id: nextId++ };
    stats.connections++;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    serveProducer(socket, producer, options, stats, warnings);
  });
  server.maxConnections = MAX_PRODUCERS;

  await listenOwnerOnly(server, path);
  if (options.socketUid !== undefined) await chown(path, options.socketUid, options.socketGid ?? -1);
  await chmod(path, 0o600);
  log.info({ path, socketUid: options.socketUid }, 'listening for dnstap');

  return {
    path,
    stats,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      warnings.protocol.flush();
      warnings.oversized.flush();
      warnings.midFrame.flush();
      await unlink(path).catch(() => undefined);
    },
  };
}

interface Warnings {
  protocol: LogSummary;
  oversized: LogSummary;
  midFrame: LogSummary;
}

function serveProducer(socket: Socket, producer: Producer, options: ListenerOptions, stats: ListenerStats, warnings: Warnings): void {
  const log = options.log.child({ producer: producer.id });
  const decoder = new FrameDecoder({ maxDataBytes: options.maxDataBytes ?? MAX_DATA_FRAME_BYTES });
  let handshake: HandshakeState = INITIAL_HANDSHAKE;
  log.debug('producer connected');

  let warnedIgnored = false;
  const refused = () => handshake.phase === 'refused';
  const handle = (frame: Frame): void => {
    if (handshake.phase === 'stopped') throw new ProtocolError('frame after STOP: a Frame Streams stream ends with its STOP');
    // Garbage from a non-producer usually reads as a huge data frame: refuse it before START.
    if (frame.kind !== 'control' && !acceptsData(handshake)) {
      throw new ProtocolError(`data frame before START (phase ${handshake.phase}); is this a dnstap producer?`);
    }
    switch (frame.kind) {
      case 'data':
        stats.dataFrames++;
        deliver(frame.payload);
        return;
      case 'oversized':
        stats.oversizedFrames++;
        warnings.oversized.warn({ producer: producer.id, length: frame.length, limit: options.maxDataBytes ?? MAX_DATA_FRAME_BYTES });
        return;
      case 'control': {
        const step = stepHandshake(handshake, frame.control);
        handshake = step.state;
        if (step.ignored && !warnedIgnored) {
          warnedIgnored = true;
          log.info({ type: controlTypeName(frame.control.type) }, 'ignoring a control frame of a type Frame Streams does not define (the spec reserves them)');
        }
        if (step.reply) socket.write(step.reply);
        if (step.refused) {
          stats.protocolErrors++;
          log.warn({ reason: step.refused, expected: DNSTAP_CONTENT_TYPE }, 'closing producer connection: it does not offer the dnstap content type');
        }
        if (step.close) {
          if (!step.refused) log.debug('producer finished its stream');
          socket.end();
        }
        return;
      }
    }
  };

  // The pipeline catches its own errors; this guard only keeps a bug from ending the loop.
  const deliver = (payload: Buffer): void => {
    try {
      options.onData(payload, producer);
    } catch (err) {
      log.error({ err }, 'dnstap frame handler failed; frame skipped');
    }
  };

  socket.on('data', (chunk: Buffer) => {
    // Refused and told so: whatever such a producer writes next is not worth another word.
    if (refused()) return void socket.destroy();
    try {
      for (const frame of decoder.push(chunk)) {
        handle(frame);
        if (refused()) return;
      }
      if (handshake.phase === 'stopped' && decoder.midFrame) throw new ProtocolError('bytes after STOP: a Frame Streams stream ends with its STOP');
    } catch (err) {
      stats.protocolErrors++;
      const reason = err instanceof ProtocolError ? err.message : String(err);
      warnings.protocol.warn({ producer: producer.id, reason });
      socket.destroy();
    }
  });
  socket.on('end', () => {
    if (refused()) return;
    if (decoder.midFrame) warnings.midFrame.warn({ producer: producer.id, phase: handshake.phase });
    else if (handshake.phase === 'initial') log.debug('producer disconnected before its handshake');
    else if (handshake.phase !== 'stopped' && !refused()) log.info({ phase: handshake.phase }, 'producer disconnected without STOP');
  });
  socket.on('error', (err) => log.debug({ err: err.message }, 'producer socket error'));
}

/**
 * A socket file left by a crashed instance is replaced; one that still accepts
 * connections belongs to a running instance and is refused.
 */
async function clearStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new ConfigError(`${path} exists and is not a socket: remove it or choose another --listen path`);
  }
  if (await isLive(path)) {
    throw new ConfigError(
      `another process is listening on ${path} (is on-his-name already running?): stop it or choose another --listen path`,
    );
  }
  await unlink(path);
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** The umask makes the socket 0600 from birth, so there is no window in which others may connect. */
async function listenOwnerOnly(server: Server, path: string): Promise<void> {
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
}
