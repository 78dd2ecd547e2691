/**
 * The dialling transport for Frame Streams: on-his-name connects to a producer that
 * listens (CoreDNS `dnstap listen unix:///PATH full`, CoreDNS 1.14.4 and later), keeps
 * one connection to it, and reconnects with backoff while it is away.
 *
 * The handshake does not change with who dialled: the producer (the writer) still opens
 * it with READY and we answer ACCEPT, as golang-framestream's bidirectional Encoder does
 * on every connection CoreDNS accepts; a producer that sends START straight away is read
 * too. Each connection is served by connection.ts, as the listener's are.
 *
 * Logs: one line when the producer is first reached, one when it goes away and one when
 * it is back; the retries in between are debug lines.
 *
 * Every wait (the backoff, the connect and handshake deadlines) is on `options.clock`,
 * the real one unless a test moves time itself.
 */
import { createConnection, type Socket } from 'node:net';
import { RECONNECT_BACKOFF, reconnectDelay, type BackoffPolicy } from '../util/backoff.js';
import { systemClock, type Timer } from '../util/clock.js';
import { ProducerWarnings, newStats, producerIds, serveProducer, type FrameStreamStats, type ServeOptions, type StreamEnd } from './connection.js';
import { formatEndpoint, type Endpoint } from './endpoint.js';

export interface DialerOptions extends ServeOptions {
  endpoint: Endpoint;
  backoff?: BackoffPolicy;
  /** For the jitter; tests pass a fixed one. */
  random?: () => number;
  connectTimeoutMs?: number;
  handshakeTimeoutMs?: number;
}

export interface FrameStreamDialer {
  readonly endpoint: Endpoint;
  readonly stats: Readonly<FrameStreamStats>;
  /** A connection to the producer is open and its stream has started. */
  readonly connected: boolean;
  /** Stop dialling and close the connection. */
  close(): Promise<void>;
}

/** A producer that accepts but never answers (a wedged host) must not hold the loop forever. */
const CONNECT_TIMEOUT_MS = 5_000;
/** CoreDNS sends READY as it accepts; silence means something else listens there. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** We never write after the handshake, so only keepalive notices a TCP peer that vanished without closing. */
const KEEPALIVE_DELAY_MS = 15_000;

export function connectFrameStreams(options: DialerOptions): FrameStreamDialer {
  const { endpoint, log } = options;
  const producer = formatEndpoint(endpoint);
  const policy = options.backoff ?? RECONNECT_BACKOFF;
  const nextId = options.nextId ?? producerIds();
  const stats = newStats();
  const clock = options.clock ?? systemClock;
  const warnings = new ProducerWarnings(options.log, clock);
  let socket: Socket | undefined;
  let retry: Timer | undefined;
  let attempt = 0;
  let connected = false;
  let everConnected = false;
  /** Since when the producer has been unreachable; undefined while connected (or never tried). */
  let awaySince: number | undefined;
  let closed = false;

  const dial = (): void => {
    retry = undefined;
    if (closed) return;
    const s = endpoint.transport === 'unix' ? createConnection(endpoint.path) : createConnection({ host: endpoint.host, port: endpoint.port });
    socket = s;
    let reason = 'connection closed before the handshake';
    let opened = false;
    // Nothing moves on a socket before it connects, so this is a deadline from the dial. Unref'd, as a socket's own timeout.
    const connecting = clock.setTimeout(() => s.destroy(new Error('timed out')), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS).unref();
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (!opened) reason = err.code ?? err.message;
    });
    s.once('connect', () => {
      clock.clearTimeout(connecting);
      opened = true;
      serve(s);
    });
    s.once('close', () => {
      clock.clearTimeout(connecting);
      if (!opened) failed(reason);
    });
  };

  const serve = (s: Socket): void => {
    const handshakeMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    let silent = false;
    // Silence ends a handshake, not slowness: as a socket's idle timeout, every chunk the producer sends restarts it.
    let handshake: Timer | undefined;
    const awaitProducer = () => {
      if (handshake) clock.clearTimeout(handshake);
      handshake = clock
        .setTimeout(() => {
          silent = true;
          s.destroy();
        }, handshakeMs)
        .unref();
    };
    const stopAwaiting = () => {
      if (handshake) clock.clearTimeout(handshake);
      handshake = undefined;
    };
    awaitProducer();
    if (endpoint.transport === 'tcp') {
      s.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      s.setNoDelay(true); // our ACCEPT is the producer's cue to START: do not hold it back
    }
    const onStart = () => {
      stopAwaiting(); // a quiet stream is normal once started: no DNS traffic, no frames
      started();
    };
    const onClose = (end: StreamEnd) => {
      stopAwaiting();
      ended(end, silent ? `no Frame Streams handshake within ${handshakeMs} ms: is this a dnstap producer (CoreDNS dnstap listen)?` : undefined);
    };
    serveProducer(s, { id: nextId() }, options, stats, warnings, { onStart, onClose });
    s.on('data', () => {
      if (handshake) awaitProducer(); // still in the handshake (a chunk with START stopped it already)
    });
  };

  const started = (): void => {
    connected = true;
    attempt = 0;
    if (!everConnected) log.info({ producer }, 'connected to the dnstap producer');
    else log.info({ producer, awayMs: clock.now() - (awaySince ?? clock.now()) }, 'dnstap producer is back');
    everConnected = true;
    awaySince = undefined;
  };

  const ended = (end: StreamEnd, why?: string): void => {
    if (closed) return;
    if (!connected) return failed(why ?? `closed in the handshake (phase ${end.phase})`);
    connected = false;
    awaySince = clock.now();
    log.warn(
      { producer, said: end.phase === 'stopped' ? 'STOP' : 'nothing', midFrame: end.midFrame },
      'dnstap producer went away; answers it gives meanwhile open nothing; reconnecting',
    );
    schedule();
  };

  const failed = (reason: string): void => {
    if (closed) return;
    // After a stream ended, ended() has said so already; before the first one, say it here once.
    if (awaySince === undefined) {
      awaySince = clock.now();
      log.warn({ producer, reason }, 'dnstap producer not reachable yet; retrying until it is');
    } else {
      log.debug({ producer, reason, attempt }, 'dnstap producer still away');
    }
    schedule();
  };

  const schedule = (): void => {
    const delayMs = reconnectDelay(attempt++, policy, options.random);
    retry = clock.setTimeout(dial, delayMs);
  };

  dial();
  return {
    endpoint,
    stats,
    get connected() {
      return connected;
    },
    async close() {
      closed = true;
      if (retry) clock.clearTimeout(retry);
      warnings.flush();
      const s = socket;
      if (!s || s.destroyed) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    },
  };
}
