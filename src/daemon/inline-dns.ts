/**
 * Inline mode's DNS side: the proxy on --dns-listen, holding allowed answers until their
 * rules are in. With `--dns-listen gateway` it follows the network: when the network is
 * re-created with another gateway, a proxy on the new address starts before the old one
 * closes, and the counts carry on across the move.
 */
import type { Logger } from 'pino';
import type { InlineDns } from '../config/config.js';
import { holdUntilOpen, type HoldStats } from '../pipeline/hold.js';
import { newProxyStats, startDnsProxy, type DnsProxy } from '../dns-proxy/server.js';
import { describe } from '../dns-proxy/upstream.js';
import { systemClock, type Clock } from '../util/clock.js';
import { isLoopbackHost } from '../util/host-port.js';
import { ConfigError } from '../util/errors.js';
import type { Pipeline } from '../pipeline/pipeline.js';

export interface InlineDnsService {
  /** The proxy listening now; its stats count since start, across moves. */
  readonly proxy: DnsProxy;
  readonly hold: Readonly<HoldStats>;
  /** Move to the network's new gateway; undefined unless --dns-listen is `gateway`. */
  followGateway?: (gateway: string | undefined) => Promise<void>;
  /** Stop answering; say what the hold's warnings held back. */
  close(): Promise<void>;
}

export async function startInlineDns(
  dns: InlineDns,
  pipeline: Pipeline,
  gateway: string | undefined,
  isClient: (address: string) => boolean,
  parentLog: Logger,
  clock: Clock = systemClock,
): Promise<InlineDnsService> {
  const log = parentLog.child({ component: 'dns-proxy' });
  if (!isLoopbackHost(dns.upstream.host)) {
    log.warn(
      { upstream: describe(dns.upstream) },
      'the DNS upstream is not on loopback: whoever can send from its address could try forging answers (each must guess a random ID, source port and letter case); a resolver on 127.0.0.1 takes even that away',
    );
  }
  const hold = holdUntilOpen({ pipeline, holdMs: dns.holdMs, denyNxdomain: dns.denyNxdomain, log, clock });
  const stats = newProxyStats();
  const port = dns.listen.port;
  const listenOn = (host: string) =>
    startDnsProxy({ listen: { host, port }, upstream: dns.upstream, upstreamTimeoutMs: dns.upstreamTimeoutMs, hooks: hold, isClient, log, stats, clock }).catch(
      (err: NodeJS.ErrnoException) => {
        throw new ConfigError(
          `cannot answer DNS on ${host}:${port} (${err.code ?? err.message}): ` +
            (err.code === 'EADDRINUSE' ? 'another DNS server listens there; move it to another port and give that as --dns-upstream' : 'check --dns-listen'),
          { cause: err },
        );
      },
    );

  const first = dns.listen.host === 'gateway' ? gateway : dns.listen.host;
  if (!first) throw new ConfigError('--dns-listen gateway needs a bridge with an IPv4 address (the gateway): give an address instead, e.g. --dns-listen 192.0.2.1:53');
  let current = await listenOn(first);
  const proxy: DnsProxy = {
    get address() {
      return current.address;
    },
    stats,
    close: () => current.close(),
  };
  const close = async () => {
    await current.close();
    hold.flush();
  };
  if (dns.listen.host !== 'gateway') return { proxy, hold: hold.stats, close };

  const followGateway = async (next: string | undefined): Promise<void> => {
    if (!next || next === current.address.host) return;
    const from = current.address.host;
    try {
      const moved = await listenOn(next);
      await current.close();
      current = moved;
      log.info({ from, to: next, port }, `answering DNS on the network's new gateway ${next}`);
    } catch (err) {
      // Containers on the new network ask the new gateway: say so loudly, keep what works.
      log.error({ err: (err as Error).message, still: from }, `cannot answer DNS on the new gateway ${next}; containers' DNS fails until on-his-name is restarted`);
    }
  };
  return { proxy, hold: hold.stats, followGateway, close };
}
