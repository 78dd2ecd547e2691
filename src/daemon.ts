/**
 * The daemon: wires the pipeline and owns its lifecycle.
 *
 *   DNS server ─dnstap over Frame Streams─▶ framestream/listener ─data frame─▶ decision
 *     (dnstap/decode → dns/answer → policy) ─allow─▶ firewall ─iptables-restore─▶ DOCKER-USER
 *
 * docker/network turns --network into the bridge interface at start (docker/wait.ts waits
 * for it with --wait-for-network); bridge-follower.ts then follows Docker's events and moves
 * the firewall when the network is re-created on another bridge. The firewall's
 * base rules (DROP included) are in place before the socket accepts a single producer,
 * and stay in place when the daemon stops: egress is closed whenever we are not running.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { decide, type Decision } from './decision.js';
import { followBridge } from './bridge-follower.js';
import type { DockerEvents } from './docker/events.js';
import type { NetworkFollower } from './docker/follow.js';
import { resolveBridgeNetwork, type BridgeNetwork, type DockerNetworks } from './docker/network.js';
import { waitForNetwork } from './docker/wait.js';
import { ConfigError, DecodeError } from './errors.js';
import { Firewall } from './firewall/firewall.js';
import { IpsetBackend } from './firewall/ipset-backend.js';
import { DEFAULT_MAX_ELEMENTS } from './firewall/ipset.js';
import type { IpsetRunner } from './firewall/ipset-runner.js';
import type { IptablesRunner } from './firewall/iptables.js';
import { listenFrameStreams, type FrameStreamListener, type Producer } from './framestream/listener.js';
import { Policy } from './policy/policy.js';
import { AddressGuard } from './policy/special-addresses.js';

export interface DaemonDeps {
  runner: IptablesRunner;
  /** Needed for --backend ipset; a long-lived `ipset -` in production. */
  ipset?: () => IpsetRunner;
  /** ip6tables; AAAA answers open rules there. Without it IPv6 is refused if the network has IPv6. */
  runner6?: IptablesRunner;
  /** Needed unless config.interface names the bridge; without getEvents the network is not followed. */
  docker?: () => DockerNetworks & Partial<DockerEvents>;
  log: Logger;
}

export interface Daemon {
  /** The bridge filtered now: it changes when the network is re-created. */
  readonly bridge: string;
  /** Follows Docker's events; absent with --interface. */
  follower?: NetworkFollower;
  firewall: Firewall;
  /** The ip6tables firewall, when IPv6 filtering is installed. */
  firewall6?: Firewall;
  listener: FrameStreamListener;
  stats: PipelineStats;
  close(): Promise<void>;
}

export interface PipelineStats {
  decisions: Record<Decision['outcome'], number>;
  decodeErrors: number;
}

const BRIDGE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
const SHUTDOWN_GRACE_MS = 5_000;

export async function startDaemon(config: Config, deps: DaemonDeps): Promise<Daemon> {
  const policy = Policy.compile(config.patterns, { allowAll: config.allowAll });
  const { bridge, subnet, ipv6, subnet6, docker, network } = await findBridge(config, deps);
  let guard = new AddressGuard(config.allowCidrs, [subnet, subnet6].filter((s): s is string => s !== undefined));
  const ipset = config.backend === 'ipset' ? requireIpset(deps) : undefined;
  const layout = { bridge, ports: config.ports };
  const firewall = new Firewall({
    ...(ipset
      ? { backend: new IpsetBackend({ iptables: deps.runner, ipset, layout, maxElements: Math.max(config.maxIps, DEFAULT_MAX_ELEMENTS) }) }
      : { runner: deps.runner, layout }),
    log: deps.log.child({ component: 'firewall' }),
    ...lifetimes(config),
  });
  await firewall.start();
  const firewall6 = await startIpv6Firewall(config, deps, bridge, ipv6);

  const stats: PipelineStats = { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0 };
  const onFrame = frameHandler(policy, () => guard, { 4: firewall, 6: firewall6 }, stats, deps.log.child({ component: 'policy' }));
  const listener = await listenFrameStreams({
    path: config.listen,
    ...(config.socketUid !== undefined ? { socketUid: config.socketUid } : {}),
    ...(config.socketGid !== undefined ? { socketGid: config.socketGid } : {}),
    log: deps.log.child({ component: 'dnstap' }),
    onData: onFrame,
  });
  deps.log.info({ patterns: policy.patterns.map((p) => p.source) }, 'on-his-name is running');
  const onSubnets = (n: BridgeNetwork) => (guard = new AddressGuard(config.allowCidrs, [n.subnet, n.subnet6].filter((s): s is string => s !== undefined)));
  const follower = docker && network ? followBridge({ docker, network, firewall, firewall6, onSubnets, log: deps.log.child({ component: 'docker' }) }) : undefined;

  return {
    get bridge() {
      return follower?.network.bridge ?? bridge;
    },
    ...(follower ? { follower } : {}),
    firewall,
    ...(firewall6 ? { firewall6 } : {}),
    listener,
    stats,
    async close() {
      await follower?.stop();
      await listener.close();
      firewall.stop();
      firewall6?.stop();
      // Rules still queued are worth a moment; a kernel that keeps refusing them is not worth hanging for.
      const settledAll = Promise.all([firewall.settled(), firewall6?.settled()]);
      const settled = await Promise.race([settledAll.then(() => true), sleep(SHUTDOWN_GRACE_MS, false, { ref: false })]);
      if (!settled) deps.log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'stopping with addresses still waiting for the kernel');
      ipset?.close();
    },
  };
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

function requireIpset(deps: DaemonDeps): IpsetRunner {
  if (!deps.ipset) throw new ConfigError('--backend ipset needs the ipset command: apt-get install ipset');
  return deps.ipset();
}

/**
 * The same block in ip6tables, so that egress never leaks over IPv6. A network with IPv6
 * that we cannot filter is refused; without IPv6 on the network, a missing ip6tables (or
 * Docker 20.10's missing ip6tables DOCKER-USER) is said once and IPv6 answers open nothing.
 */
async function startIpv6Firewall(config: Config, deps: DaemonDeps, bridge: string, ipv6: boolean): Promise<Firewall | undefined> {
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
  const firewall6 = new Firewall({
    runner: deps.runner6,
    layout: { bridge, ports: config.ports, family: 6 },
    log,
    ...lifetimes(config),
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

type FoundBridge = { bridge: string; ipv6: boolean; subnet?: string; subnet6?: string; docker?: DockerNetworks & Partial<DockerEvents>; network?: BridgeNetwork };

async function findBridge(config: Config, deps: DaemonDeps): Promise<FoundBridge> {
  if (config.interface) {
    deps.log.info({ interface: config.interface }, 'using host bridge interface, no Docker lookup');
    return { bridge: config.interface, ipv6: false };
  }
  if (!deps.docker) throw new ConfigError('no Docker client: name the bridge with --interface');
  const docker = deps.docker();
  const network = config.waitForNetwork
    ? await waitForNetwork(docker, config.network, deps.log.child({ component: 'docker' }))
    : await resolveBridgeNetwork(docker, config.network);
  if (!BRIDGE_NAME.test(network.bridge)) {
    throw new ConfigError(`Docker network "${network.name}" has an unusable bridge name "${network.bridge}"`);
  }
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
  };
}

function frameHandler(policy: Policy, guard: () => AddressGuard, firewalls: { 4: Firewall; 6: Firewall | undefined }, stats: PipelineStats, log: Logger) {
  let warnedNotFull = false;
  return (payload: Buffer, producer: Producer): void => {
    let decision: Decision;
    try {
      decision = decide(payload, policy, guard());
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      stats.decodeErrors++;
      log.warn({ producer: producer.id, reason: err.message, decodeErrors: stats.decodeErrors }, 'skipped a dnstap frame');
      return;
    }
    stats.decisions[decision.outcome]++;
    switch (decision.outcome) {
      case 'allow': {
        for (const { address, why } of decision.refused) {
          log.warn({ name: decision.name, client: decision.client, address, why }, 'refused to open a special-purpose address; open it on purpose with --allow-cidr');
        }
        const added = [
          ...decision.ipv4.filter((r) => firewalls[4].allow(r.address, decision.name, r.ttl) === 'queued'),
          ...decision.ipv6.filter((r) => firewalls[6]?.allow(r.address, decision.name, r.ttl) === 'queued'),
        ];
        if (added.length === 0 && !log.isLevelEnabled('debug')) return; // a repeat answer: nothing to say
        const fields = { name: decision.name, client: decision.client, pattern: decision.pattern, ips: addresses(decision) };
        if (added.length > 0) log.info({ ...fields, added: added.map((r) => r.address) }, 'allow');
        else log.debug(fields, 'allow (already open)');
        return;
      }
      case 'deny':
        log.info({ name: decision.name, client: decision.client }, 'deny');
        return;
      case 'skip':
        if (log.isLevelEnabled('trace')) log.trace({ reason: decision.reason, name: decision.name, rcode: decision.rcode, client: decision.client }, 'skip');
        if (decision.reason === 'no-response-message' && !warnedNotFull) {
          warnedNotFull = true;
          log.warn(
            'dnstap CLIENT_RESPONSE carries no response message: add "full" to the dnstap line of the Corefile ' +
              '(dnstap unix:///run/on-his-name/dnstap.sock full), or enable client response logging in your DNS server',
          );
        }
        return;
    }
  };
}

function addresses(decision: { ipv4: { address: string }[]; ipv6: { address: string }[] }): string[] {
  return [...decision.ipv4, ...decision.ipv6].map((r) => r.address);
}
