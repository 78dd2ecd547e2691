/**
 * The daemon: wires the pipeline and owns its lifecycle.
 *
 *   DNS server ─dnstap over Frame Streams─▶ framestream/listener ─data frame─┐
 *     (or a DNS server that listens ◀─ framestream/dialer, --connect)        │
 *   containers ─DNS─▶ dns-proxy ─query─▶ upstream resolver ─answer (held)────┤
 *                                                                            ▼
 *     pipeline: decision (dnstap/decode → dns/answer → policy) ─allow─▶ firewall ─▶ the kernel
 *
 * docker/network turns --network into the bridge interface at start (docker/wait.ts waits
 * for it with --wait-for-network) and host/bridge.ts reads the bridge's own addresses, which
 * together say which sources the bridge may carry, where its containers ask DNS, and
 * whether IPv6 must be filtered (filtered-bridge.ts). bridge-follower.ts then follows
 * Docker's events and moves the firewall when the network is re-created. The firewall's
 * base rules (DROP, source check and host protection included) are in place before the
 * socket accepts a single producer, and stay in place when the daemon stops: egress is
 * closed whenever we are not running. With --admin-listen, admin/ serves what every stage
 * counts (metrics, open addresses, pattern hits, health); it reads, never changes.
 *
 * Everything opened goes on one list of closers (closers.ts), unwound in reverse when a
 * later step of the start fails, and at stop.
 */
import type { Logger } from 'pino';
import { Metrics } from '../admin/metrics.js';
import { adminRoutes } from '../admin/routes.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import type { ApiSources } from '../admin/api.js';
import type { Config } from '../config/config.js';
import type { DockerEvents } from '../docker/events.js';
import type { DockerSystem } from '../docker/info.js';
import type { NetworkFollower } from '../docker/follow.js';
import { resolveBridgeNetwork, type BridgeNetwork, type DockerNetworks } from '../docker/network.js';
import { waitForNetwork } from '../docker/wait.js';
import type { Clock } from '../util/clock.js';
import { Firewall, type KernelOptions } from '../firewall/firewall.js';
import type { IpsetRunner } from '../firewall/ipset-runner.js';
import type { IptablesRunner } from '../firewall/iptables.js';
import type { NftRunner } from '../firewall/nft/runner.js';
import { producerIds, sumStats } from '../framestream/connection.js';
import { connectFrameStreams, type FrameStreamDialer } from '../framestream/dialer.js';
import { listenFrameStreams, type FrameStreamListener } from '../framestream/listener.js';
import { readBridge, type BridgeReader } from '../host/bridge.js';
import { Pipeline, type PipelineStats } from '../pipeline/pipeline.js';
import { Patterns } from '../policy/patterns.js';
import { AddressGuard } from '../policy/special-addresses.js';
import { ConfigError } from '../util/errors.js';
import { followBridge } from './bridge-follower.js';
import { Closers } from './closers.js';
import { clientsOf, filteredBridge, layoutFor, refuseIpv6, type Family, type FilteredBridge } from './filtered-bridge.js';
import { startInlineDns, type InlineDnsService } from './inline-dns.js';
import { kernelsFor } from './kernels.js';

export interface DaemonDeps {
  runner: IptablesRunner;
  /** Needed for --backend ipset; a long-lived `ipset -` in production. */
  ipset?: () => IpsetRunner;
  /** Needed for the nftables backend; a long-lived `nft -i` in production. */
  nft?: () => NftRunner;
  /** ip6tables; AAAA answers open rules there. Without it a bridge that can carry IPv6 is refused. */
  runner6?: IptablesRunner;
  /** Needed unless config.interface names the bridge; without getEvents the network is not followed. */
  docker?: () => DockerNetworks & Partial<DockerEvents> & Partial<DockerSystem>;
  /** What the host says about the bridge; the real `ip` and /proc by default. */
  bridgeFacts?: BridgeReader;
  /** The daemon can no longer keep its promise (a re-created network it cannot filter): the CLI exits. */
  onFatal?: (err: Error) => void;
  log: Logger;
  /** Time for the dnstap sources and for following Docker (backoff, deadlines, polls); the real clock unless a test moves it. */
  clock?: Clock;
}

export interface Daemon {
  /** The bridge filtered now: it changes when the network is re-created. */
  readonly bridge: string;
  /** Follows Docker's events; absent with --interface. */
  follower?: NetworkFollower;
  firewall: Firewall;
  /** The ip6tables firewall, when IPv6 filtering is installed. */
  firewall6?: Firewall;
  /** Absent when only --connect is given. */
  listener?: FrameStreamListener;
  /** One per --connect producer. */
  dialers: FrameStreamDialer[];
  stats: PipelineStats;
  /** Inline mode's DNS proxy and its hold on allowed answers, when --dns-listen is given. */
  dns?: InlineDnsService;
  /** The admin API, when --admin-listen asked for it. */
  admin?: AdminServer;
  close(): Promise<void>;
}

/** At stop, rules still queued are worth a moment; a kernel that keeps refusing them is not worth hanging for. */
const SHUTDOWN_GRACE_MS = 5_000;

export async function startDaemon(config: Config, deps: DaemonDeps): Promise<Daemon> {
  const closers = new Closers();
  const policy = Patterns.compile(config.patterns, { allowAll: config.allowAll });
  const found = await findBridge(config, deps);
  const view = filteredBridge(found.bridge, found.network, await (deps.bridgeFacts ?? readBridge)(found.bridge), config.dns?.listen);
  warnAboutSources(view, deps.log);
  const guard = guardFor(config, view);
  const kernels = await kernelsFor(config, view, { ...deps, docker: found.docker }, closers);
  deps.log.info({ backend: kernels.backend, reason: kernels.reason }, `filtering with the ${kernels.backend} backend: ${kernels.reason}`);
  const metrics = config.adminListen ? new Metrics() : undefined;
  const firewallFor = (family: Family, kernel: KernelOptions) =>
    new Firewall({
      ...kernel,
      log: deps.log.child({ component: 'firewall', ...(family === 6 ? { family } : {}) }),
      ...lifetimes(config),
      ...(metrics ? { onInKernel: metrics.inKernelHook(family) } : {}),
    });
  const firewall = firewallFor(4, kernels[4]);
  const firewall6 = kernels[6] ? firewallFor(6, kernels[6]) : undefined;
  closers.add('firewalls', () => settleAndStop([firewall, firewall6], deps.log));
  await closers.step(() => firewall.start());
  const ipv6 = await closers.step(() => startIpv6(firewall6, kernels.ipv6Always ? 'the nftables table filters both families' : view.ipv6Because, deps.log));

  const pipeline = new Pipeline(policy, guard, { 4: firewall, 6: ipv6 }, deps.log.child({ component: 'policy' }));
  closers.add('pipeline', () => pipeline.flush());
  // Read at each query: after the network is re-created, its new subnets are the clients.
  let clients = clientsOf(view);
  const dns = config.dns ? await closers.step(() => startInlineDns(config.dns!, pipeline, view[4].dns[0]?.address, (a) => clients(a), deps.log)) : undefined;
  if (dns) closers.add('dns', () => dns.close());
  const dnstap = { log: deps.log.child({ component: 'dnstap' }), onData: pipeline.onFrame, nextId: producerIds(), ...(deps.clock ? { clock: deps.clock } : {}) };
  const listener = config.listen
    ? await closers.step(() =>
        listenFrameStreams({
          endpoint: config.listen!,
          ...(config.socketUid !== undefined ? { socketUid: config.socketUid } : {}),
          ...(config.socketGid !== undefined ? { socketGid: config.socketGid } : {}),
          ...dnstap,
        }),
      )
    : undefined;
  if (listener) closers.add('listener', () => listener.close());
  const dialers = config.connect.map((endpoint) => connectFrameStreams({ endpoint, ...dnstap }));
  closers.add('dialers', () => Promise.all(dialers.map((d) => d.close())));
  const families = [{ family: 4 as const, firewall }, ...(ipv6 ? [{ family: 6 as const, firewall: ipv6 }] : [])];
  const admin = metrics
    ? await closers.step(() =>
        startAdmin(config, metrics, {
          patterns: policy.patterns.map((p) => p.source),
          pipeline: pipeline.stats,
          dnstap: sumStats([...(listener ? [listener] : []), ...dialers]),
          ...(listener?.endpoint.transport === 'unix' ? { socketPath: listener.endpoint.path } : {}),
          ...(dns ? { dns } : {}),
          firewalls: families,
        }, deps.log),
      )
    : undefined;
  if (admin) closers.add('admin', () => admin.close());
  deps.log.info({ patterns: policy.patterns.map((p) => p.source), ipv6: ipv6 ? 'filtered' : 'not carried' }, 'on-his-name is running');
  const follower =
    found.docker && found.network
      ? followBridge({
          docker: found.docker,
          network: found.network,
          firewall,
          firewall6: ipv6,
          viewOf: async (network) => filteredBridge(network.bridge, network, await (deps.bridgeFacts ?? readBridge)(network.bridge), config.dns?.listen),
          layoutFor: (next, family) => layoutFor(next, family, config.ports, config.hostPorts),
          onSubnets: (next) => {
            clients = clientsOf(next);
            pipeline.useGuard(guardFor(config, next));
          },
          ...(dns?.followGateway ? { onGateway: dns.followGateway } : {}),
          onFatal: (err) => (deps.onFatal ? deps.onFatal(err) : deps.log.fatal({ err: err.message }, err.message)),
          log: deps.log.child({ component: 'docker' }),
          ...(deps.clock ? { clock: deps.clock } : {}),
        })
      : undefined;
  if (follower) closers.add('follower', () => follower.stop());

  return {
    get bridge() {
      return follower?.network.bridge ?? found.bridge;
    },
    ...(follower ? { follower } : {}),
    firewall,
    ...(ipv6 ? { firewall6: ipv6 } : {}),
    ...(listener ? { listener } : {}),
    dialers,
    stats: pipeline.stats,
    ...(dns ? { dns } : {}),
    ...(admin ? { admin } : {}),
    async close() {
      for (const { what, err } of await closers.closeAll()) deps.log.warn({ what, err: (err as Error).message }, 'stopping: could not close cleanly');
    },
  };
}

/** Let queued rules land within the grace, then stop the loops: a refusing kernel must not keep us alive. */
async function settleAndStop(firewalls: ReadonlyArray<Firewall | undefined>, log: Logger): Promise<void> {
  const live = firewalls.filter((f): f is Firewall => f !== undefined);
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), SHUTDOWN_GRACE_MS);
  });
  const settled = await Promise.race([Promise.all(live.map((f) => f.settled())).then(() => true), grace]);
  clearTimeout(timer);
  if (!settled) log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'stopping with addresses still waiting for the kernel');
  for (const f of live) f.stop();
  await Promise.all(live.map((f) => f.settled()));
}

/** Expiry, bounds and reconcile: the same for both address families. */
function lifetimes(config: Config) {
  return {
    minTtl: config.minTtl,
    ttlGrace: config.ttlGrace,
    maxIps: config.maxIps,
    maxIpsPerName: config.maxIpsPerName,
    reconcileIntervalMs: config.reconcileInterval * 1000,
  };
}

/** Metrics and the admin HTTP server, once the firewall and the socket are up, so that health tells the truth. */
async function startAdmin(config: Config, metrics: Metrics, sources: ApiSources, log: Logger): Promise<AdminServer> {
  metrics.watch(sources);
  return startAdminServer({ address: config.adminListen!, routes: adminRoutes(sources, metrics), log: log.child({ component: 'admin' }) });
}

/**
 * The same block in ip6tables, so that egress never leaks over IPv6. A bridge that can
 * carry IPv6 (filtered-bridge.ts) but cannot be filtered is refused; otherwise a missing
 * ip6tables (or Docker 20.10's missing ip6tables DOCKER-USER) is said once and AAAA
 * answers open nothing.
 */
async function startIpv6(firewall6: Firewall | undefined, ipv6Because: string | undefined, log: Logger): Promise<Firewall | undefined> {
  if (!firewall6) {
    if (ipv6Because) throw refuseIpv6(ipv6Because, 'no ip6tables runner');
    return undefined;
  }
  try {
    await firewall6.start();
    return firewall6;
  } catch (err) {
    firewall6.stop();
    if (ipv6Because) throw refuseIpv6(ipv6Because, (err as Error).message, err);
    log.warn({ err: (err as Error).message }, 'no IPv6 filtering (nothing carries IPv6 from the bridge): AAAA answers open nothing');
    return undefined;
  }
}

/** A subnet missing for a family means every packet of that family from the bridge is dropped as forged: say so. */
function warnAboutSources(view: FilteredBridge, log: Logger): void {
  if (view[4].subnets.length === 0) {
    log.warn({ bridge: view.bridge }, `no IPv4 subnet is known for ${view.bridge} (no address on it, none from Docker): every IPv4 packet from it is dropped`);
  }
}

type FoundBridge = {
  bridge: string;
  docker?: DockerNetworks & Partial<DockerEvents> & Partial<DockerSystem>;
  network?: BridgeNetwork;
};

async function findBridge(config: Config, deps: DaemonDeps): Promise<FoundBridge> {
  if (config.interface) {
    deps.log.info({ interface: config.interface }, 'using host bridge interface, no Docker lookup');
    return { bridge: config.interface };
  }
  if (!deps.docker) throw new ConfigError('no Docker client: name the bridge with --interface');
  const docker = deps.docker();
  const network = config.waitForNetwork
    ? await waitForNetwork(docker, config.network, deps.log.child({ component: 'docker' }), deps.clock ? { clock: deps.clock } : {})
    : await resolveBridgeNetwork(docker, config.network);
  deps.log.info(
    { network: network.name, bridge: network.bridge, subnet: network.subnet, dns: network.gateway },
    `containers should use --dns=${network.gateway ?? '<the network gateway>'} with the DNS server bound there`,
  );
  return { bridge: network.bridge, docker, network };
}

/** The special ranges, the operator's --allow-cidr, and the network's own subnets, which a container must never reach through us. */
function guardFor(config: Config, view: FilteredBridge): AddressGuard {
  return new AddressGuard(config.allowCidrs, [...view[4].subnets, ...view[6].subnets]);
}
