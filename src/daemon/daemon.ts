/**
 * The daemon: wires the pipeline and owns its lifecycle.
 *
 *   DNS server ─dnstap over Frame Streams─▶ framestream/listener ─data frame─┐
 *     (or a DNS server that listens ◀─ framestream/dialer, --connect)        │
 *   containers ─DNS─▶ dns-proxy ─query─▶ upstream resolver ─answer (held)────┤
 *                                                                            ▼
 *     pipeline: decision (dnstap/decode → dns/answer → policy) ─allow─▶ firewall ─▶ DOCKER-USER
 *
 * docker/network turns --network into the bridge interface at start (docker/wait.ts waits
 * for it with --wait-for-network); bridge-follower.ts then follows Docker's events and moves
 * the firewall when the network is re-created on another bridge. The firewall's
 * base rules (DROP included) are in place before the socket accepts a single producer,
 * and stay in place when the daemon stops: egress is closed whenever we are not running.
 * With --admin-listen, admin/ serves what every stage counts (metrics, open addresses,
 * pattern hits, health); it reads, never changes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Metrics } from '../admin/metrics.js';
import { adminRoutes } from '../admin/routes.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import type { ApiSources } from '../admin/api.js';
import { followBridge } from './bridge-follower.js';
import type { Config } from '../config/config.js';
import type { DockerEvents } from '../docker/events.js';
import type { NetworkFollower } from '../docker/follow.js';
import { resolveBridgeNetwork, type BridgeNetwork, type DockerNetworks } from '../docker/network.js';
import { waitForNetwork } from '../docker/wait.js';
import type { Clock } from '../util/clock.js';
import { ConfigError } from '../util/errors.js';
import { Firewall, type KernelOptions } from '../firewall/firewall.js';
import { IpsetBackend } from '../firewall/ipset-backend.js';
import { DEFAULT_MAX_ELEMENTS } from '../firewall/ipset.js';
import type { IpsetRunner } from '../firewall/ipset-runner.js';
import type { IptablesRunner } from '../firewall/iptables.js';
import type { Layout } from '../firewall/planner.js';
import { producerIds, sumStats } from '../framestream/connection.js';
import { connectFrameStreams, type FrameStreamDialer } from '../framestream/dialer.js';
import { listenFrameStreams, type FrameStreamListener } from '../framestream/listener.js';
import { startInlineDns, type InlineDnsService } from './inline-dns.js';
import { Pipeline, type PipelineStats } from '../pipeline/pipeline.js';
import { Policy } from '../policy/policy.js';
import { AddressGuard } from '../policy/special-addresses.js';

export interface DaemonDeps {
  runner: IptablesRunner;
  /** Needed for --backend ipset; a long-lived `ipset -` in production. */
  ipset?: () => IpsetRunner;
  /** ip6tables; AAAA answers open rules there. Without it IPv6 is refused if the network has IPv6. */
  runner6?: IptablesRunner;
  /** Needed unless config.interface names the bridge; without getEvents the network is not followed. */
  docker?: () => DockerNetworks & Partial<DockerEvents>;
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

const SHUTDOWN_GRACE_MS = 5_000;

export async function startDaemon(config: Config, deps: DaemonDeps): Promise<Daemon> {
  const policy = Policy.compile(config.patterns, { allowAll: config.allowAll });
  const { bridge, subnet, ipv6, subnet6, gateway, docker, network } = await findBridge(config, deps);
  const guard = guardFor(config, { subnet, subnet6 });
  const ipset = config.backend === 'ipset' ? requireIpset(deps) : undefined;
  const layout = { bridge, ports: config.ports };
  const metrics = config.adminListen ? new Metrics() : undefined;
  const firewall = new Firewall({
    ...kernelFor(config, deps.runner, ipset, layout),
    log: deps.log.child({ component: 'firewall' }),
    ...lifetimes(config),
    ...(metrics ? { onInKernel: metrics.inKernelHook(4) } : {}),
  });
  await firewall.start();
  const firewall6 = await startIpv6Firewall(config, deps, { bridge, ipv6, ipset }, metrics?.inKernelHook(6));

  const pipeline = new Pipeline(policy, guard, { 4: firewall, 6: firewall6 }, deps.log.child({ component: 'policy' }));
  const dns = config.dns ? await startInlineDns(config.dns, pipeline, gateway, deps.log) : undefined;
  const dnstap = { log: deps.log.child({ component: 'dnstap' }), onData: pipeline.onFrame, nextId: producerIds(), ...(deps.clock ? { clock: deps.clock } : {}) };
  const listener = config.listen
    ? await listenFrameStreams({
        endpoint: config.listen,
        ...(config.socketUid !== undefined ? { socketUid: config.socketUid } : {}),
        ...(config.socketGid !== undefined ? { socketGid: config.socketGid } : {}),
        ...dnstap,
      }).catch(async (err: unknown) => {
        await dns?.proxy.close();
        throw err;
      })
    : undefined;
  const dialers = config.connect.map((endpoint) => connectFrameStreams({ endpoint, ...dnstap }));
  const closeSources = () => Promise.all([listener?.close(), ...dialers.map((d) => d.close()), dns?.proxy.close()]);
  const families = [{ family: 4 as const, firewall }, ...(firewall6 ? [{ family: 6 as const, firewall: firewall6 }] : [])];
  const admin = metrics
    ? await startAdmin(config, metrics, {
        patterns: policy.patterns.map((p) => p.source),
        pipeline: pipeline.stats,
        dnstap: sumStats([...(listener ? [listener] : []), ...dialers]),
        ...(listener?.endpoint.transport === 'unix' ? { socketPath: listener.endpoint.path } : {}),
        ...(dns ? { dns } : {}),
        firewalls: families,
      }, deps.log).catch(async (err: unknown) => {
        // The sockets go with the daemon that cannot start.
        await closeSources();
        throw err;
      })
    : undefined;
  deps.log.info({ patterns: policy.patterns.map((p) => p.source) }, 'on-his-name is running');
  const onSubnets = (n: BridgeNetwork) => pipeline.useGuard(guardFor(config, n));
  const follower =
    docker && network
      ? followBridge({
          docker,
          network,
          firewall,
          firewall6,
          onSubnets,
          ...(dns?.followGateway ? { onGateway: dns.followGateway } : {}),
          log: deps.log.child({ component: 'docker' }),
          ...(deps.clock ? { clock: deps.clock } : {}),
        })
      : undefined;

  return {
    get bridge() {
      return follower?.network.bridge ?? bridge;
    },
    ...(follower ? { follower } : {}),
    firewall,
    ...(firewall6 ? { firewall6 } : {}),
    ...(listener ? { listener } : {}),
    dialers,
    stats: pipeline.stats,
    ...(dns ? { dns } : {}),
    ...(admin ? { admin } : {}),
    async close() {
      await admin?.close();
      await follower?.stop();
      await closeSources();
      pipeline.flush();
      firewall.stop();
      firewall6?.stop();
      // Rules still queued are worth a moment; a kernel that keeps refusing them is not worth hanging for.
      const settledAll = Promise.all([firewall.settled(), firewall6?.settled()]);
      const settled = await Promise.race([settledAll.then(() => true), sleep(SHUTDOWN_GRACE_MS, false, { ref: false })]);
      if (!settled) deps.log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'stopping with addresses still waiting for the kernel');
      ipset?.close();
      deps.runner.close?.();
      deps.runner6?.close?.();
    },
  };
}

/** Per-address rules through `runner`, or with --backend ipset the family's set behind one rule. */
function kernelFor(config: Config, runner: IptablesRunner, ipset: IpsetRunner | undefined, layout: Layout): KernelOptions {
  if (!ipset) return { runner, layout };
  return { backend: new IpsetBackend({ iptables: runner, ipset, layout, maxElements: Math.max(config.maxIps, DEFAULT_MAX_ELEMENTS) }) };
}

/** Expiry, bound and reconcile: the same for both address families. */
function lifetimes(config: Config) {
  return {
    minTtl: config.minTtl,
    ttlGrace: config.ttlGrace,
    maxIps: config.maxIps,
    reconcileIntervalMs: config.reconcileInterval * 1000,
  };
}

/** Metrics and the admin HTTP server, once the firewall and the socket are up, so that health tells the truth. */
async function startAdmin(config: Config, metrics: Metrics, sources: ApiSources, log: Logger): Promise<AdminServer> {
  metrics.watch(sources);
  return startAdminServer({ address: config.adminListen!, routes: adminRoutes(sources, metrics), log: log.child({ component: 'admin' }) });
}

function requireIpset(deps: DaemonDeps): IpsetRunner {
  if (!deps.ipset) throw new ConfigError('--backend ipset needs the ipset command: apt-get install ipset');
  return deps.ipset();
}

/**
 * The same block in ip6tables, so that egress never leaks over IPv6. A network with IPv6
 * that we cannot filter is refused; without IPv6 on the network, a missing ip6tables (or
 * Docker 20.10's missing ip6tables DOCKER-USER) is said once and IPv6 answers open nothing.
 */
async function startIpv6Firewall(
  config: Config,
  deps: DaemonDeps,
  { bridge, ipv6, ipset }: { bridge: string; ipv6: boolean; ipset: IpsetRunner | undefined },
  onInKernel?: (latencyMs: number, count: number) => void,
): Promise<Firewall | undefined> {
  const log = deps.log.child({ component: 'firewall', family: 6 });
  const refuse = (why: string, cause?: unknown) =>
    new ConfigError(
      `the network has IPv6 but ip6tables filtering cannot be installed (${why}): install ip6tables and ` +
        `let Docker create its ip6tables DOCKER-USER chain ("experimental": true, "ip6tables": true in /etc/docker/daemon.json), ` +
        `or re-create the network without --ipv6`,
      { cause },
    );
  if (!deps.runner6) {
    if (ipv6) throw refuse('no ip6tables runner');
    return undefined;
  }
  const layout = { bridge, ports: config.ports, family: 6 as const };
  const firewall6 = new Firewall({
    ...kernelFor(config, deps.runner6, ipset, layout),
    log,
    ...lifetimes(config),
    ...(onInKernel ? { onInKernel } : {}),
  });
  try {
    await firewall6.start();
    return firewall6;
  } catch (err) {
    if (ipv6) throw refuse((err as Error).message, err);
    log.warn({ err: (err as Error).message }, 'no IPv6 filtering (the network has no IPv6): AAAA answers open nothing');
    return undefined;
  }
}

type FoundBridge = {
  bridge: string;
  ipv6: boolean;
  subnet?: string;
  subnet6?: string;
  gateway?: string;
  docker?: DockerNetworks & Partial<DockerEvents>;
  network?: BridgeNetwork;
};

async function findBridge(config: Config, deps: DaemonDeps): Promise<FoundBridge> {
  if (config.interface) {
    deps.log.info({ interface: config.interface }, 'using host bridge interface, no Docker lookup');
    return { bridge: config.interface, ipv6: false };
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
  return {
    bridge: network.bridge,
    docker,
    network,
    ipv6: network.ipv6,
    ...(network.subnet ? { subnet: network.subnet } : {}),
    ...(network.subnet6 ? { subnet6: network.subnet6 } : {}),
    ...(network.gateway ? { gateway: network.gateway } : {}),
  };
}

/** The special ranges, the operator's --allow-cidr, and the network's own subnets, which a container must never reach through us. */
function guardFor(config: Config, network: { subnet?: string | undefined; subnet6?: string | undefined }): AddressGuard {
  return new AddressGuard(config.allowCidrs, [network.subnet, network.subnet6].filter((s): s is string => s !== undefined));
}
