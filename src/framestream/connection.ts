/**
 * One producer's connection, whichever side dialled: its bytes go through a FrameDecoder
 * and the reader's handshake, its data frames to `onData`. A producer that breaks the
 * protocol loses this connection, never the daemon or the other producers. The listener
 * (producers dial us) and the dialer (we dial producers that listen) both serve through here.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../util/clock.js';
import { ProtocolError } from '../util/errors.js';
import { LogSummary } from '../util/log-summary.js';
import type { ControlFrame } from './control.js';
import { FrameDecoder, type Frame } from './decoder.js';
import { INITIAL_HANDSHAKE, acceptsData, stepHandshake, type HandshakeState, type Phase } from './handshake.js';
import { DNSTAP_CONTENT_TYPE, MAX_DATA_FRAME_BYTES, controlTypeName } from './limits.js';

export interface Producer {
  /** A per-process connection number, for logs. */
  id: number;
}

/** How long a producer refused for its content type has to hang up by itself. */
const REFUSED_GRACE_MS = 1_000;

export interface ServeOptions {
  log: Logger;
  onData: (payload: Buffer, producer: Producer) => void;
  maxDataBytes?: number;
  /** Numbers producers; pass one counter to every source so that ids stay unique in the logs. */
  nextId?: () => number;
  /** For the refused producer's grace and the warnings' summaries; systemClock unless a test moves time itself. */
  clock?: Clock;
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

/**
 * The warnings a flood of garbage repeats (many connections, or many oversized frames):
 * shared by every connection of one listener or dialer, so that the log gets a few lines
 * and a summary a second however many connections misbehave.
 */
export class ProducerWarnings {
  readonly protocol: LogSummary;
  readonly oversized: LogSummary;
  readonly midFrame: LogSummary;

  constructor(log: Logger, clock: Clock = systemClock) {
    this.protocol = new LogSummary(log, 'closing producer connection: Frame Streams protocol error', { clock });
    this.oversized = new LogSummary(log, 'skipped an oversized data frame; a dnstap message never needs this much, check what writes to the socket', { clock });
    this.midFrame = new LogSummary(log, 'producer disconnected in the middle of a frame; partial frame dropped', { clock });
  }

  /** Log what is held back, when the source closes. */
  flush(): void {
    this.protocol.flush();
    this.oversized.flush();
    this.midFrame.flush();
  }
}

/** Producer numbers 1, 2, 3…: one counter per listener or dialer unless the caller shares one. */
export function producerIds(): () => number {
  let next = 1;
  return () => next++;
}

/** Serve one connection until it closes. */
export function serveProducer(
  socket: Socket,
  producer: Producer,
  options: ServeOptions,
  stats: FrameStreamStats,
  warnings: ProducerWarnings,
  hooks: ConnectionHooks = {},
): void {
  const log = options.log.child({ producer: producer.id });
  const maxDataBytes = options.maxDataBytes ?? MAX_DATA_FRAME_BYTES;
  const clock = options.clock ?? systemClock;
  const decoder = new FrameDecoder({ maxDataBytes });
  let handshake: HandshakeState = INITIAL_HANDSHAKE;
  let warnedIgnored = false;
  const refused = () => handshake.phase === 'refused';
  stats.connections++;
  log.debug('producer connected');

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
        warnings.oversized.warn({ producer: producer.id, length: frame.length, limit: maxDataBytes });
        return;
      case 'control':
        return control(frame.control);
    }
  };

  const control = (frame: ControlFrame): void => {
    const step = stepHandshake(handshake, frame);
    const starting = step.state.phase === 'started' && handshake.phase !== 'started';
    handshake = step.state;
    if (starting) hooks.onStart?.();
    if (step.ignored && !warnedIgnored) {
      warnedIgnored = true;
      log.info({ type: controlTypeName(frame.type) }, 'ignoring a control frame of a type Frame Streams does not define (the spec reserves them)');
    }
    if (step.reply) socket.write(step.reply);
    if (step.refused) {
      stats.protocolErrors++;
      log.warn({ reason: step.refused, expected: DNSTAP_CONTENT_TYPE }, 'closing producer connection: it does not offer the dnstap content type');
    }
    if (step.close) {
      if (!step.refused) log.debug('producer finished its stream');
      socket.end();
      // Told to give up, a producer closes; one that does not would hold the connection (and a dialer's retry) for ever.
      if (step.refused) clock.setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
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
    else if (handshake.phase !== 'stopped' && !hooks.onClose) log.info({ phase: handshake.phase }, 'producer disconnected without STOP');
  });
  socket.on('error', (err) => log.debug({ err: err.message }, 'producer socket error'));
  const { onClose } = hooks;
  if (onClose) socket.once('close', () => onClose({ phase: handshake.phase, midFrame: decoder.midFrame }));
}
