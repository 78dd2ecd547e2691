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
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
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
  maxInFlight?: number;
  /** Counts to carry on with (a proxy that replaces another); fresh ones by default. */
  stats?: DnsProxyStats;
}

export interface DnsProxyStats {
  queries: Record<Transport, number>;
  malformed: number;
  upstreamFailures: number;
  /** Queries turned away with SERVFAIL because maxInFlight were already waiting. */
  overloaded: number;
  truncated: number;
}

export interface DnsProxy {
  /** Where it listens (the port filled in when 0 was asked for). */
  address: UpstreamAddress;
  stats: Readonly<DnsProxyStats>;
  close(): Promise<void>;
}

const DEFAULT_MAX_IN_FLIGHT = 4096;
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CLIENTS = 512;
/** Warnings about a sick upstream or malformed queries: one line per kind this often, then a summary with the count. */
const WARN_EVERY_MS = 10_000;

export function newProxyStats(): DnsProxyStats {
  return { queries: { udp: 0, tcp: 0 }, malformed: 0, upstreamFailures: 0, overloaded: 0, truncated: 0 };
}

export async function startDnsProxy(options: DnsProxyOptions): Promise<DnsProxy> {
  const { log } = options;
  const stats = options.stats ?? newProxyStats();
  const warnings = {
    malformed: new LogSummary(log, 'malformed DNS query: answered FORMERR/NOTIMP or dropped', { intervalMs: WARN_EVERY_MS }),
    overloaded: new LogSummary(log, 'too many DNS queries waiting for the upstream: answered SERVFAIL', { intervalMs: WARN_EVERY_MS }),
    upstream: new LogSummary(log, 'the upstream DNS server did not answer: SERVFAIL to the client (is --dns-upstream right and running?)', {
      intervalMs: WARN_EVERY_MS,
    }),
  };
  let inFlight = 0;

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
    if (inFlight >= (options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT)) {
      stats.overloaded++;
      warnings.overloaded.warn({ client, inFlight, overloaded: stats.overloaded });
      return { reply: reply(query, 'SERVFAIL'), query };
    }
    inFlight++;
    try {
      const ask = transport === 'udp' ? askOverUdp : askOverTcp;
      const upstreamReply = await ask(options.upstream, bytes, query, options.upstreamTimeoutMs);
      return { reply: await options.hooks.release(upstreamReply, query, client), query };
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      stats.upstreamFailures++;
      warnings.upstream.warn({ upstream: describe(options.upstream), kind: err.kind, reason: err.message, failures: stats.upstreamFailures });
      return { reply: reply(query, 'SERVFAIL'), query };
    } finally {
      inFlight--;
    }
  };

  const udp = await bindUdp(options.listen);
  const tcp = await listenTcp({ ...options.listen, port: (udp.address() as { port: number }).port }).catch((err: unknown) => {
    udp.close();
    throw err;
  });
  const tcpClients = new Set<Socket>();

  udp.on('message', (bytes: Buffer, peer: RemoteInfo) => {
    void replyFor(bytes, peer.address, 'udp').then(
      (result) => {
        if (!result) return;
        const datagram = result.query ? fitForUdp(result.reply, result.query) : result.reply;
        if (datagram !== result.reply) stats.truncated++;
        udp.send(datagram, peer.port, peer.address);
      },
      (err: unknown) => log.error({ err }, 'DNS proxy failed on a UDP query'),
    );
  });
  udp.on('error', (err) => log.warn({ err: err.message }, 'DNS proxy UDP socket error'));

  tcp.on('connection', (socket: Socket) => {
    if (tcpClients.size >= MAX_TCP_CLIENTS) {
      socket.destroy();
      return;
    }
    tcpClients.add(socket);
    socket.once('close', () => tcpClients.delete(socket));
    serveTcpClient(socket, (bytes, client) => replyFor(bytes, client, 'tcp'), log);
  });

  const address = { host: options.listen.host, port: (udp.address() as { port: number }).port };
  log.info({ listen: describe(address), upstream: describe(options.upstream) }, 'answering DNS inline: each allowed answer waits for its rules');
  return {
    address,
    stats,
    async close() {
      for (const socket of tcpClients) socket.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
      for (const warning of Object.values(warnings)) warning.flush();
    },
  };
}

function serveTcpClient(socket: Socket, replyFor: (bytes: Buffer, client: string) => Promise<{ reply: Buffer } | undefined>, log: Logger): void {
  const client = socket.remoteAddress ?? 'unknown';
  const messages = new TcpMessages();
  socket.setNoDelay(true);
  socket.setTimeout(TCP_IDLE_MS, () => socket.end());
  socket.on('data', (chunk: Buffer) => {
    for (const bytes of messages.push(chunk)) {
      void replyFor(bytes, client).then(
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

/** A warning per kind at most every `everyMs`; the counts in each line say how many there were. */
