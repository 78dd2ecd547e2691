/**
 * The upstream resolver, asked one query at a time: over UDP from a fresh socket (a random
 * source port per query, so a stray or spoofed datagram has to guess it), over TCP on a
 * connection of its own. A reply is accepted only if it answers the query (id and
 * question); no reply within the bound is an UpstreamError, which the proxy turns into
 * SERVFAIL for its client.
 */
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { formatHostPort } from '../util/host-port.js';
import { answers, type Query } from './message.js';
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

export function askOverUdp(upstream: UpstreamAddress, bytes: Buffer, query: Query, timeoutMs: number): Promise<Buffer> {
  const socket = createSocket(isIPv6(upstream.host) ? 'udp6' : 'udp4');
  return settle(upstream, timeoutMs, () => socket.close(), (finish) => {
    socket.on('message', (reply) => {
      if (answers(reply, query)) finish(reply);
    });
    socket.on('error', (err) => finish(new UpstreamError('unreachable', `${describe(upstream)}: ${err.message}`)));
    socket.connect(upstream.port, upstream.host, () => socket.send(bytes));
  });
}

export function askOverTcp(upstream: UpstreamAddress, bytes: Buffer, query: Query, timeoutMs: number): Promise<Buffer> {
  const socket = connect({ host: upstream.host, port: upstream.port, noDelay: true });
  const messages = new TcpMessages();
  return settle(upstream, timeoutMs, () => socket.destroy(), (finish) => {
    socket.on('connect', () => socket.write(withLength(bytes)));
    socket.on('data', (chunk: Buffer) => {
      const reply = messages.push(chunk).find((message) => answers(message, query));
      if (reply) finish(reply);
    });
    socket.on('end', () => finish(new UpstreamError('closed', `${describe(upstream)} closed the TCP connection without an answer`)));
    socket.on('error', (err) => finish(new UpstreamError('unreachable', `${describe(upstream)}: ${err.message}`)));
  });
}

/** One outcome per query: the first of reply, error or timeout wins, and the socket goes. */
function settle(
  upstream: UpstreamAddress,
  timeoutMs: number,
  release: () => void,
  start: (finish: (outcome: Buffer | UpstreamError) => void) => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (outcome: Buffer | UpstreamError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      release();
      if (outcome instanceof UpstreamError) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => finish(new UpstreamError('timeout', `no answer from ${describe(upstream)} within ${timeoutMs} ms`)), timeoutMs);
    start(finish);
  });
}

export function describe(upstream: UpstreamAddress): string {
  return formatHostPort(upstream.host, upstream.port);
}
