/**
 * The inline DNS proxy's sockets: containers ask here over UDP and TCP, each query goes to
 * the upstream resolver over the same transport, and the upstream's reply goes back only
 * when `release` lets it (after the firewall has the answer's addresses). The client's own
 * address is what `release` sees, so decisions name the container that asked.
 *
 * A resolver's clients expect: FORMERR for a query that cannot be read, NOTIMP for an
 * opcode other than QUERY, SERVFAIL when the upstream is silent past the bound, TC when a
 * reply does not fit the client's UDP size (it then asks over TCP), their EDNS options
 * passed on, and several queries in flight on one TCP connection (RFC 7766).
 *
 * A container on the bridge may also be hostile, so the proxy:
 * - answers only its clients (the network's subnets, loopback): a query with a forged
 *   source elsewhere gets no reply, so the host never reflects data to the internet;
 * - never answers the UDP ports of echo, chargen and the like, or port 0 (BIND refuses
 *   them too): a forged query from one of those cannot start a loop;
 * - gives each client its share of the slots waiting for the upstream, so one flooding
 *   client cannot starve the others, and bounds each TCP connection's whole life and each
 *   client's number of connections, so a client that trickles bytes cannot hold them all.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../util/clock.js';
import { LogSummary } from '../util/log-summary.js';
import { checkQuery, fitForUdp, reply, type Query } from './message.js';
import { TcpMessages, withLength } from './tcp-framing.js';
import { UpstreamError, askOverTcp, askOverUdp, describe, type UpstreamAddress } from './upstream.js';

export type Transport = 'udp' | 'tcp';

/** What the proxy asks of the rest of on-his-name. */
export interface ProxyHooks {
  /** Answer a query here without asking upstream (e.g. NXDOMAIN for a denied name); undefined to forward it. */
  answerLocally?(query: Query, client: string): Buffer | undefined;
  /** The upstream's reply for `client`; resolves with what to send, once it may go. */
  release(upstreamReply: Buffer, query: Query, client: string): Promise<Buffer>;
}

export interface DnsProxyOptions {
  listen: UpstreamAddress;
  upstream: UpstreamAddress;
  /** Past this, the client gets SERVFAIL (stub resolvers give up after 5 s). */
  upstreamTimeoutMs: number;
  hooks: ProxyHooks;
  log: Logger;
  /** Who may ask (the network's subnets and loopback); anyone when absent. Read at each query, so it follows the network. */
  isClient?: (address: string) => boolean;
  maxInFlight?: number;
  /** One client's share of maxInFlight. */
  maxInFlightPerClient?: number;
  /** A TCP connection's whole life, busy or not (default 30 s). */
  tcpLifetimeMs?: number;
  /** Counts to carry on with (a proxy that replaces another); fresh ones by default. */
  stats?: DnsProxyStats;
  /**
   * What the upstream's bound, a TCP connection's lifetime and the warnings' summaries run
   * on; systemClock unless a test moves time itself. (The TCP idle timer is the socket's own.)
   */
  clock?: Clock;
}

export interface DnsProxyStats {
  queries: Record<Transport, number>;
  malformed: number;
  upstreamFailures: number;
  /** Queries turned away with SERVFAIL because maxInFlight (or the client's share) were already waiting. */
  overloaded: number;
  truncated: number;
  /** Datagrams and connections from a source that is not a client, or from a reflection port: no reply. */
  refused: number;
  /** Replies on a query's upstream socket that did not answer it (wrong ID or question): stray, or forged. */
  mismatchedReplies: number;
}

export interface DnsProxy {
  /** Where it listens (the port filled in when 0 was asked for). */
  address: UpstreamAddress;
  stats: Readonly<DnsProxyStats>;
  close(): Promise<void>;
}

const DEFAULT_MAX_IN_FLIGHT = 4096;
/** A stub resolver waits on a handful of queries; a client with more is flooding. */
const DEFAULT_MAX_IN_FLIGHT_PER_CLIENT = 128;
const TCP_IDLE_MS = 10_000;
/** However busy, a TCP connection ends this long after it opened (RFC 7766 lets servers close idle or long ones). */
const TCP_LIFETIME_MS = 30_000;
const MAX_TCP_CLIENTS = 512;
const MAX_TCP_PER_CLIENT = 16;
/** UDP services that answer anything: a reply sent there could start a loop, so none is (BIND keeps a like list). */
const REFLECTING_PORTS = new Set([0, 7, 9, 13, 17, 19, 37, 111, 123, 137, 161, 389, 1900, 5353, 11211]);
/** Warnings about a sick upstream or malformed queries: one line per kind this often, then a summary with the count. */
const WARN_EVERY_MS = 10_000;

export function newProxyStats(): DnsProxyStats {
  return { queries: { udp: 0, tcp: 0 }, malformed: 0, upstreamFailures: 0, overloaded: 0, truncated: 0, refused: 0, mismatchedReplies: 0 };
}

export async function startDnsProxy(options: DnsProxyOptions): Promise<DnsProxy> {
  const { log } = options;
  const stats = options.stats ?? newProxyStats();
  const clock = options.clock ?? systemClock;
  const summary = { intervalMs: WARN_EVERY_MS, clock };
  const warnings = {
    malformed: new LogSummary(log, 'malformed DNS query: answered FORMERR/NOTIMP or dropped', summary),
    overloaded: new LogSummary(log, 'too many DNS queries waiting for the upstream: answered SERVFAIL', summary),
    upstream: new LogSummary(log, 'the upstream DNS server did not answer: SERVFAIL to the client (is --dns-upstream right and running?)', summary),
    refused: new LogSummary(log, 'DNS query from a source that is not a client of this network (forged?), or from a reflecting port: not answered', summary),
  };
  let inFlight = 0;
  const inFlightBy = new Map<string, number>();
  const maxPerClient = options.maxInFlightPerClient ?? DEFAULT_MAX_IN_FLIGHT_PER_CLIENT;
  let closed = false;
  const refuse = (client: string, port: number | undefined, transport: Transport) => {
    stats.refused++;
    warnings.refused.warn({ client, port, transport, refused: stats.refused });
  };

  /** The reply owed for `bytes` from `client`, or undefined when none is (a response, a runt). */
  const replyFor = async (bytes: Buffer, client: string, transport: Transport): Promise<{ reply: Buffer; query?: Query } | undefined> => {
    stats.queries[transport]++;
    const check = checkQuery(bytes);
    if (!check.ok) {
      stats.malformed++;
      warnings.malformed.warn({ client, transport, why: check.why, malformed: stats.malformed });
      return check.reply ? { reply: check.reply } : undefined;
    }
    const { query } = check;
    const local = options.hooks.answerLocally?.(query, client);
    if (local) return { reply: local, query };
    const mine = inFlightBy.get(client) ?? 0;
    if (inFlight >= (options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT) || mine >= maxPerClient) {
      stats.overloaded++;
      warnings.overloaded.warn({ client, inFlight, ofClient: mine, overloaded: stats.overloaded });
      return { reply: reply(query, 'SERVFAIL'), query };
    }
    inFlight++;
    inFlightBy.set(client, mine + 1);
    try {
      const ask = transport === 'udp' ? askOverUdp : askOverTcp;
      const upstreamReply = await ask(options.upstream, bytes, query, { timeoutMs: options.upstreamTimeoutMs, stats, clock });
      return { reply: await options.hooks.release(upstreamReply, query, client), query };
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      stats.upstreamFailures++;
      warnings.upstream.warn({ upstream: describe(options.upstream), kind: err.kind, reason: err.message, failures: stats.upstreamFailures });
      return { reply: reply(query, 'SERVFAIL'), query };
    } finally {
      inFlight--;
      const left = inFlightBy.get(client)! - 1;
      if (left === 0) inFlightBy.delete(client);
      else inFlightBy.set(client, left);
    }
  };
  const isClient = (address: string) => options.isClient?.(address) ?? true;

  const udp = await bindUdp(options.listen);
  const tcp = await listenTcp({ ...options.listen, port: (udp.address() as { port: number }).port }).catch((err: unknown) => {
    udp.close();
    throw err;
  });
  const tcpClients = new Set<Socket>();

  udp.on('message', (bytes: Buffer, peer: RemoteInfo) => {
    if (!isClient(peer.address) || REFLECTING_PORTS.has(peer.port)) return refuse(peer.address, peer.port, 'udp');
    void replyFor(bytes, peer.address, 'udp').then(
      (result) => {
        // The answer may come back after the proxy closed (the gateway moved, or a stop with queries in flight).
        if (!result || closed) return;
        const datagram = result.query ? fitForUdp(result.reply, result.query) : result.reply;
        if (datagram !== result.reply) stats.truncated++;
        udp.send(datagram, peer.port, peer.address, (err) => {
          if (err) log.debug({ client: peer.address, err: err.message }, 'DNS reply not sent');
        });
      },
      (err: unknown) => log.error({ err }, 'DNS proxy failed on a UDP query'),
    );
  });
  udp.on('error', (err) => log.warn({ err: err.message }, 'DNS proxy UDP socket error'));

  const tcpByClient = new Map<string, number>();
  tcp.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? 'unknown';
    const theirs = tcpByClient.get(client) ?? 0;
    if (!isClient(client)) {
      refuse(client, socket.remotePort, 'tcp');
      socket.destroy();
      return;
    }
    if (tcpClients.size >= MAX_TCP_CLIENTS || theirs >= MAX_TCP_PER_CLIENT) {
      socket.destroy();
      return;
    }
    tcpClients.add(socket);
    tcpByClient.set(client, theirs + 1);
    socket.once('close', () => {
      tcpClients.delete(socket);
      const left = tcpByClient.get(client)! - 1;
      if (left === 0) tcpByClient.delete(client);
      else tcpByClient.set(client, left);
    });
    serveTcpClient(socket, client, (bytes) => replyFor(bytes, client, 'tcp'), options.tcpLifetimeMs ?? TCP_LIFETIME_MS, clock, log);
  });

  const address = { host: options.listen.host, port: (udp.address() as { port: number }).port };
  log.info({ listen: describe(address), upstream: describe(options.upstream) }, 'answering DNS inline: each allowed answer waits for its rules');
  return {
    address,
    stats,
    async close() {
      closed = true;
      for (const socket of tcpClients) socket.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
      for (const warning of Object.values(warnings)) warning.flush();
    },
  };
}

function serveTcpClient(
  socket: Socket,
  client: string,
  replyFor: (bytes: Buffer) => Promise<{ reply: Buffer } | undefined>,
  lifetimeMs: number,
  clock: Clock,
  log: Logger,
): void {
  const messages = new TcpMessages();
  socket.setNoDelay(true);
  socket.setTimeout(TCP_IDLE_MS, () => socket.end());
  // The idle timer restarts on every byte: a client trickling one byte a while would keep the connection for ever.
  const lifetime = clock.setTimeout(() => socket.destroy(), lifetimeMs).unref();
  socket.once('close', () => clock.clearTimeout(lifetime));
  socket.on('data', (chunk: Buffer) => {
    for (const bytes of messages.push(chunk)) {
      void replyFor(bytes).then(
        (result) => {
          if (result && socket.writable) socket.write(withLength(result.reply));
          else if (!result) socket.destroy(); // not a query: nothing honest is talking
        },
        (err: unknown) => log.error({ err }, 'DNS proxy failed on a TCP query'),
      );
    }
  });
  socket.on('error', (err) => log.debug({ client, err: err.message }, 'DNS client TCP connection error'));
}

function bindUdp(listen: UpstreamAddress): Promise<UdpSocket> {
  const socket = createSocket({ type: isIPv6(listen.host) ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(listen.port, listen.host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function listenTcp(listen: UpstreamAddress): Promise<Server> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

