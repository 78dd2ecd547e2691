/**
 * One producer's connection, whichever side dialled: its bytes go through a FrameDecoder
 * and the reader's handshake, its data frames to `onData`. A producer that breaks the
 * protocol loses this connection, never the daemon or the other producers. The listener
 * (producers dial us) and the dialer (we dial producers that listen) both serve through here.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ProtocolError } from '../errors.js';
import { FrameDecoder, type Frame } from './decoder.js';
import { INITIAL_HANDSHAKE, acceptsData, stepHandshake, type HandshakeState, type Phase } from './handshake.js';
import { MAX_DATA_FRAME_BYTES } from './limits.js';

export interface Producer {
  /** A per-process connection number, for logs. */
  id: number;
}

export interface ServeOptions {
  log: Logger;
  onData: (payload: Buffer, producer: Producer) => void;
  maxDataBytes?: number;
  /** Numbers producers; pass one counter to every source so that ids stay unique in the logs. */
  nextId?: () => number;
}

export interface FrameStreamStats {
  connections: number;
  dataFrames: number;
  oversizedFrames: number;
  protocolErrors: number;
}

/** Moments of a connection's life, for a caller that reports them itself (the dialer). */
export interface ConnectionHooks {
  /** The handshake reached START: from here on the producer sends dnstap. */
  onStart?: () => void;
  /** The connection closed; a stream that ended without STOP is no longer logged by serveProducer. */
  onClose?: (end: StreamEnd) => void;
}

/** How a connection ended. */
export interface StreamEnd {
  /** The handshake's phase when the connection closed: `started` and `stopped` mean it spoke dnstap. */
  phase: Phase;
  /** A frame was cut short; it was dropped. */
  midFrame: boolean;
}

export function newStats(): FrameStreamStats {
  return { connections: 0, dataFrames: 0, oversizedFrames: 0, protocolErrors: 0 };
}

/** The counts of several listeners and dialers as one, read live. */
export function sumStats(streams: ReadonlyArray<{ readonly stats: Readonly<FrameStreamStats> }>): Readonly<FrameStreamStats> {
  const sum = (key: keyof FrameStreamStats) => streams.reduce((n, stream) => n + stream.stats[key], 0);
  return {
    get connections() {
      return sum('connections');
    },
    get dataFrames() {
      return sum('dataFrames');
    },
    get oversizedFrames() {
      return sum('oversizedFrames');
    },
    get protocolErrors() {
      return sum('protocolErrors');
    },
  };
}

/** Producer numbers 1, 2, 3…: one counter per listener or dialer unless the caller shares one. */
export function producerIds(): () => number {
  let next = 1;
  return () => next++;
}

/** Serve one connection until it closes. */
export function serveProducer(socket: Socket, producer: Producer, options: ServeOptions, stats: FrameStreamStats, hooks: ConnectionHooks = {}): void {
  const log = options.log.child({ producer: producer.id });
  const maxDataBytes = options.maxDataBytes ?? MAX_DATA_FRAME_BYTES;
  const decoder = new FrameDecoder({ maxDataBytes });
  let handshake: HandshakeState = INITIAL_HANDSHAKE;
  stats.connections++;
  log.debug('producer connected');

  const handle = (frame: Frame): boolean => {
    // Garbage from a non-producer usually reads as a huge data frame: refuse it before START.
    if (frame.kind !== 'control' && !acceptsData(handshake)) {
      throw new ProtocolError(`data frame before START (phase ${handshake.phase}); is this a dnstap producer?`);
    }
    switch (frame.kind) {
      case 'data':
        stats.dataFrames++;
        deliver(frame.payload);
        return true;
      case 'oversized':
        stats.oversizedFrames++;
        log.warn(
          { length: frame.length, limit: maxDataBytes },
          'skipped an oversized data frame; a dnstap message never needs this much, check what writes to the socket',
        );
        return true;
      case 'control': {
        const step = stepHandshake(handshake, frame.control);
        const starting = step.state.phase === 'started' && handshake.phase !== 'started';
        handshake = step.state;
        if (starting) hooks.onStart?.();
        if (step.reply) socket.write(step.reply);
        if (step.close) {
          log.debug('producer finished its stream');
          socket.end();
          return false;
        }
        return true;
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
    try {
      for (const frame of decoder.push(chunk)) if (!handle(frame)) return;
    } catch (err) {
      stats.protocolErrors++;
      const reason = err instanceof ProtocolError ? err.message : String(err);
      log.warn({ reason }, 'closing producer connection: Frame Streams protocol error');
      socket.destroy();
    }
  });
  socket.on('end', () => {
    if (decoder.midFrame) log.warn('producer disconnected in the middle of a frame; partial frame dropped');
    else if (handshake.phase === 'initial') log.debug('producer disconnected before its handshake');
    else if (handshake.phase !== 'stopped' && !hooks.onClose) log.info({ phase: handshake.phase }, 'producer disconnected without STOP');
  });
  socket.on('error', (err) => log.debug({ err: err.message }, 'producer socket error'));
  const { onClose } = hooks;
  if (onClose) socket.once('close', () => onClose({ phase: handshake.phase, midFrame: decoder.midFrame }));
}
