/**
 * The upstream resolver, asked one query at a time: over UDP from a fresh socket (a random
 * source port per query), over TCP on a connection of its own, each time with a fresh random
 * ID and, over UDP, random letter case (disguise.ts), so that a forged datagram has to guess
 * all three. A reply is accepted only if it answers the query as sent; no reply within the
 * bound is an UpstreamError, which the proxy turns into SERVFAIL for its client.
 */
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { systemClock, type Clock } from '../util/clock.js';
import { formatHostPort } from '../util/host-port.js';
import { answersDisguised, disguise, undisguise, type RandomBytes } from './disguise.js';
import type { Query } from './message.js';
import { TcpMessages, withLength } from './tcp-framing.js';

export interface UpstreamAddress {
  host: string;
  port: number;
}

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly kind: 'timeout' | 'unreachable' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

/** Counted as they happen, for the metrics: replies that did not answer what was asked. */
export interface UpstreamStats {
  /** Datagrams on a query's socket that were not its answer (wrong ID or question): stray, or forged. */
  mismatchedReplies: number;
}

/** How one query is asked. */
export interface AskOptions {
  /** No answer within this is an UpstreamError('timeout'). */
  timeoutMs: number;
  stats?: UpstreamStats | undefined;
  random?: RandomBytes | undefined;
  /** What the bound runs on; systemClock unless a test moves time itself. */
  clock?: Clock | undefined;
}

export function askOverUdp(upstream: UpstreamAddress, bytes: Buffer, query: Query, options: AskOptions): Promise<Buffer> {
  const { stats, random } = options;
  const socket = createSocket(isIPv6(upstream.host) ? 'udp6' : 'udp4');
  const sent = disguise(bytes, query, { mixCase: true, ...(random ? { random } : {}) });
  return settle(upstream, options, () => socket.close(), (finish) => {
    socket.on('message', (reply) => {
      if (answersDisguised(reply, sent)) finish(undisguise(reply, query));
      else if (stats) stats.mismatchedReplies++;
    });
    socket.on('error', (err) => finish(new UpstreamError('unreachable', `${describe(upstream)}: ${err.message}`)));
    socket.connect(upstream.port, upstream.host, () => socket.send(sent.bytes));
  });
}

/** Over TCP nothing can be forged without the connection; a fresh ID still keeps the client's own from the upstream. */
export function askOverTcp(upstream: UpstreamAddress, bytes: Buffer, query: Query, options: AskOptions): Promise<Buffer> {
  const { stats, random } = options;
  const socket = connect({ host: upstream.host, port: upstream.port, noDelay: true });
  const messages = new TcpMessages();
  const sent = disguise(bytes, query, { mixCase: false, ...(random ? { random } : {}) });
  return settle(upstream, options, () => socket.destroy(), (finish) => {
    socket.on('connect', () => socket.write(withLength(sent.bytes)));
    socket.on('data', (chunk: Buffer) => {
      const replies = messages.push(chunk);
      const reply = replies.find((message) => answersDisguised(message, sent));
      if (stats) stats.mismatchedReplies += replies.length - (reply ? 1 : 0);
      if (reply) finish(undisguise(reply, query));
    });
    socket.on('end', () => finish(new UpstreamError('closed', `${describe(upstream)} closed the TCP connection without an answer`)));
    socket.on('error', (err) => finish(new UpstreamError('unreachable', `${describe(upstream)}: ${err.message}`)));
  });
}

/** One outcome per query: the first of reply, error or timeout wins, and the socket goes. */
function settle(
  upstream: UpstreamAddress,
  { timeoutMs, clock = systemClock }: AskOptions,
  release: () => void,
  start: (finish: (outcome: Buffer | UpstreamError) => void) => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (outcome: Buffer | UpstreamError) => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      release();
      if (outcome instanceof UpstreamError) reject(outcome);
      else resolve(outcome);
    };
    const timer = clock.setTimeout(() => finish(new UpstreamError('timeout', `no answer from ${describe(upstream)} within ${timeoutMs} ms`)), timeoutMs);
    start(finish);
  });
}

export function describe(upstream: UpstreamAddress): string {
  return formatHostPort(upstream.host, upstream.port);
}
