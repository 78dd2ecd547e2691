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
import { auditWarning, policiesView, type ApiSources } from '../admin/api.js';
import { RecentAnswers } from '../blocked/recent-answers.js';
import { BlockedView } from '../blocked/view.js';
import { watchBlocked } from '../blocked/watch.js';
import type { Config } from '../config/config.js';
import { loadPolicies } from '../config/policies.js';
import { containersOnNetwork, type AttachedContainer, type DockerContainers } from '../docker/containers.js';
import type { DockerEvents } from '../docker/events.js';
import type { NetworkFollower } from '../docker/follow.js';
import { followContainers, type ContainerFollower } from '../docker/follow-containers.js';
import type { DockerSystem } from '../docker/info.js';
import { resolveBridgeNetwork, type BridgeNetwork, type DockerNetworks } from '../docker/network.js';
import { waitForNetwork } from '../docker/wait.js';
import type { Firewall } from '../firewall/firewall.js';
import type { IpsetRunner } from '../firewall/ipset-runner.js';
import type { IptablesRunner } from '../firewall/iptables.js';
import type { NftRunner } from '../firewall/nft/runner.js';
import { producerIds, sumStats } from '../framestream/connection.js';
import { connectFrameStreams, type FrameStreamDialer } from '../framestream/dialer.js';
import { listenFrameStreams, type FrameStreamListener } from '../framestream/listener.js';
import { readBridge, type BridgeReader } from '../host/bridge.js';
import { Pipeline, type PipelineStats } from '../pipeline/pipeline.js';
import { Clients, type Container } from '../policy/clients.js';
import { DEFAULT_POLICY } from '../policy/policies.js';
import { AddressGuard } from '../policy/special-addresses.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConfigError } from '../util/errors.js';
import { isLoopbackHost } from '../util/host-port.js';
import { followBridge } from './bridge-follower.js';
import { Closers } from './closers.js';
import { clientsOf, filteredBridge, type Family, type FilteredBridge } from './filtered-bridge.js';
import { startInlineDns, type InlineDnsService } from './inline-dns.js';
import { kernelsFor } from './kernels.js';
import { PolicyFirewalls } from './policy-firewalls.js';
import { logChanges, routesOf } from './policy-changes.js';
import { Reloads, watchFile, type ReloadResult } from './reloads.js';
import { watchRuleset, type RulesetMonitor } from '../host/ruleset-watch.js';

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
  /** Watches the kernel's ruleset (nft monitor) to reconcile as soon as someone changes it; none: the reconcile interval only. */
  rulesetMonitor?: RulesetMonitor;
}

export interface Daemon {
  /** The bridge filtered now: it changes when the network is re-created. */
  readonly bridge: string;
  /** Follows Docker's events; absent with --interface. */
  follower?: NetworkFollower;
  /** Follows the containers on the network, for their labels; absent with --interface. */
  containers?: ContainerFollower;
  /** The default policy's IPv4 firewall. */
  firewall: Firewall;
  /** The default policy's IPv6 firewall, when IPv6 is filtered. */
  firewall6?: Firewall;
  /** Every policy's firewalls. */
  firewalls: PolicyFirewalls;
  /** Which policy each client has. */
  clients: Clients;
  /** Read the policy file again (SIGHUP does the same). */
  reload(why?: string): Promise<ReloadResult>;
  /** Absent when only --connect is given. */
  listener?: FrameStreamListener;
  /** One per --connect producer. */
  dialers: FrameStreamDialer[];
  stats: PipelineStats;
  /** Inline mode's DNS proxy and its hold on allowed answers, when --dns-listen is given. */
  dns?: InlineDnsService;
  /** The admin API, when --admin-listen asked for it. */
  admin?: AdminServer;
  /** The blocked view and a read of the kernel's record now (the timer reads every --blocked-interval). */
  blocked?: { view: BlockedView; read(): Promise<void> };
  close(): Promise<void>;
}

/** At stop, rules still queued are worth a moment; a kernel that keeps refusing them is not worth hanging for. */
const SHUTDOWN_GRACE_MS = 5_000;

export async function startDaemon(config: Config, deps: DaemonDeps): Promise<Daemon> {
  const closers = new Closers();
  const clients = new Clients(await loadPolicies(config));
  const found = await findBridge(config, deps);
  const view = filteredBridge(found.bridge, found.network, await (deps.bridgeFacts ?? readBridge)(found.bridge), config.dns?.listen);
  warnAboutSources(view, deps.log);
  const kernels = await kernelsFor(config, view, { ...deps, docker: found.docker }, closers);
  deps.log.info({ backend: kernels.backend, reason: kernels.reason }, `filtering with the ${kernels.backend} backend: ${kernels.reason}`);
  const metrics = config.adminListen ? new Metrics() : undefined;
  const firewalls = new PolicyFirewalls({
    kernels,
    config,
    log: deps.log,
    ipv6Because: view.ipv6Because,
    ...(metrics ? { onInKernel: (family: Family) => metrics.inKernelHook(family) } : {}),
  });
  closers.add('firewalls', () => firewalls.stop(SHUTDOWN_GRACE_MS, deps.log));
  const containers = found.docker && found.network && hasContainers(found.docker) ? found.docker : undefined;
  const policyLog = deps.log.child({ component: 'policy' });
  // Before the first rule: a container with a policy of its own never passes for a default client.
  const known = containers ? clients.replaceContainers(await listContainers(containers, found.network!, deps.log)) : [];
  const policies = clients.policySet;
  await closers.step(() => firewalls.start(policies.defaultPolicy, clients.policiesInUse().filter((p) => p.name !== DEFAULT_POLICY), routesOf(clients)));
  logChanges(known, policyLog);
  const reloads = new Reloads(config, clients, firewalls, policyLog);
  const clock = deps.clock ?? systemClock;
  // --reconcile-interval 0 means "never touch what I changed": the watch would undo it too.
  if (deps.rulesetMonitor && config.reconcileInterval > 0) {
    const watch = watchRuleset({ spawn: deps.rulesetMonitor, onChange: () => firewalls.reconcile(), log: deps.log.child({ component: 'firewall' }), clock });
    closers.add('ruleset watch', () => watch.stop());
  }
  const blocked = kernels.blocked().length ? { view: new BlockedView(), answers: new RecentAnswers() } : undefined;

  // Read at each query: after the network is re-created, its new subnets are the clients.
  let onNetwork = clientsOf(view);
  const pipeline = new Pipeline(clients.decisions, guardFor(config, view), firewalls, policyLog, {
    onNetwork: (a) => onNetwork(a) && !isLoopbackHost(a),
    ...(blocked ? { onAnswer: (client, name, addresses, allowed) => blocked.answers.record(client, name, addresses, allowed, clock.now()) } : {}),
  });
  const blockedWatch = blocked
    ? watchBlocked({
        readers: () => kernels.blocked(),
        ...blocked,
        who: (client) => {
          const { policy, container } = clients.forClient(client);
          return { policy: policy.name, audit: policy.audit, container: container?.name };
        },
        intervalMs: config.blockedInterval * 1000,
        clock,
        log: deps.log.child({ component: 'blocked' }),
      })
    : undefined;
  if (blockedWatch) closers.add('blocked view', () => blockedWatch.stop());
  closers.add('pipeline', () => pipeline.flush());
  const dns = config.dns ? await closers.step(() => startInlineDns(config.dns!, pipeline, view[4].dns[0]?.address, (a) => onNetwork(a), deps.log)) : undefined;
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
  const admin = metrics
    ? await closers.step(() =>
        startAdmin(config, metrics, {
          policies: () => policiesView(clients, config.policyFile, reloads.last ?? null),
          pipeline: pipeline.stats,
          dnstap: sumStats([...(listener ? [listener] : []), ...dialers]),
          ...(listener?.endpoint.transport === 'unix' ? { socketPath: listener.endpoint.path } : {}),
          ...(dns ? { dns } : {}),
          firewalls: () => firewalls.list(),
          containerAt: (address) => {
            const { policy, container } = clients.forClient(address);
            return container ? { ...container, policy: policy.name } : undefined;
          },
          ...(blocked ? { blocked: blocked.view } : {}),
        }, deps.log),
      )
    : undefined;
  if (admin) closers.add('admin', () => admin.close());
  const watcher = config.policyFile ? watchFile(config.policyFile, () => void reloads.reload('the file changed'), deps.log) : undefined;
  if (watcher) closers.add('policy file watch', () => watcher.close());
  deps.log.info(
    {
      patterns: policies.defaultPolicy.patterns.patterns.map((p) => p.source),
      policies: [...policies.named.keys()],
      ipv6: firewalls.ipv6 ? 'filtered' : 'not carried',
      blockedView: blocked ? `read every ${config.blockedInterval} s` : 'off',
    },
    'on-his-name is running',
  );
  const auditing = policies.all.filter((p) => p.audit).map((p) => p.name);
  if (auditing.length) deps.log.warn({ policies: auditing }, auditWarning(auditing));
  let follower: NetworkFollower | undefined;
  const containerFollower = containers
    ? followContainers({
        docker: containers,
        network: () => ({ name: found.network!.name, id: follower?.network.id ?? found.network!.id }),
        onContainers: async (list) => {
          const changes = clients.replaceContainers(list.map(asContainer));
          try {
            await firewalls.update(clients.policiesInUse(), routesOf(clients), clients.snapshot());
          } finally {
            // Once the routes are in (or the kernel refused them, which is logged too).
            logChanges(changes, policyLog);
          }
        },
        log: deps.log.child({ component: 'docker' }),
        ...(deps.clock ? { clock: deps.clock } : {}),
      })
    : undefined;
  if (containerFollower) closers.add('containers', () => containerFollower.stop());
  follower =
    found.docker && found.network
      ? followBridge({
          docker: found.docker,
          network: found.network,
          firewalls,
          viewOf: async (network) => filteredBridge(network.bridge, network, await (deps.bridgeFacts ?? readBridge)(network.bridge), config.dns?.listen),
          onSubnets: (next) => {
            onNetwork = clientsOf(next);
            pipeline.useGuard(guardFor(config, next));
          },
          ...(dns?.followGateway ? { onGateway: dns.followGateway } : {}),
          onFatal: (err) => (deps.onFatal ? deps.onFatal(err) : deps.log.fatal({ err: err.message }, err.message)),
          log: deps.log.child({ component: 'docker' }),
          ...(deps.clock ? { clock: deps.clock } : {}),
        })
      : undefined;
  const bridgeFollower = follower;
  if (bridgeFollower) closers.add('follower', () => bridgeFollower.stop());

  return {
    get bridge() {
      return bridgeFollower?.network.bridge ?? found.bridge;
    },
    ...(bridgeFollower ? { follower: bridgeFollower } : {}),
    ...(containerFollower ? { containers: containerFollower } : {}),
    firewall: firewalls.firewall(DEFAULT_POLICY, 4)!,
    ...(firewalls.ipv6 ? { firewall6: firewalls.firewall(DEFAULT_POLICY, 6)! } : {}),
    firewalls,
    clients,
    ...(listener ? { listener } : {}),
    dialers,
    stats: pipeline.stats,
    ...(dns ? { dns } : {}),
    ...(admin ? { admin } : {}),
    ...(blocked && blockedWatch ? { blocked: { view: blocked.view, read: () => blockedWatch.read() } } : {}),
    reload: (why = 'asked') => reloads.reload(why),
    async close() {
      for (const { what, err } of await closers.closeAll()) deps.log.warn({ what, err: (err as Error).message }, 'stopping: could not close cleanly');
    },
  };
}

function asContainer(c: AttachedContainer): Container {
  return { id: c.id, name: c.name, labels: c.labels, addresses: [c.ipv4, c.ipv6].filter((a): a is string => a !== undefined) };
}

async function listContainers(docker: DockerContainers, network: BridgeNetwork, log: Logger): Promise<Container[]> {
  try {
    return (await containersOnNetwork(docker, { name: network.name, id: network.id })).map(asContainer);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot list the containers on the network yet: every client has the default policy until Docker answers');
    return [];
  }
}

function hasContainers(docker: object): docker is DockerContainers & DockerEvents {
  return typeof (docker as Partial<DockerContainers>).listContainers === 'function' && typeof (docker as Partial<DockerEvents>).getEvents === 'function';
}

/** Metrics and the admin HTTP server, once the firewall and the socket are up, so that health tells the truth. */
async function startAdmin(config: Config, metrics: Metrics, sources: ApiSources, log: Logger): Promise<AdminServer> {
  metrics.watch(sources);
  return startAdminServer({ address: config.adminListen!, routes: adminRoutes(sources, metrics), log: log.child({ component: 'admin' }) });
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
