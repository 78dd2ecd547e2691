/**
 * The daemon: wires the pipeline and owns its lifecycle.
 *
 *   DNS server ─dnstap over Frame Streams─▶ framestream/listener ─data frame─▶ decision
 *     (dnstap/decode → dns/answer → policy) ─allow─▶ firewall ─iptables-restore─▶ DOCKER-USER
 *
 * docker/network turns --network into the bridge interface once, at start. The firewall's
 * base rules (DROP included) are in place before the socket accepts a single producer,
 * and stay in place when the daemon stops: egress is closed whenever we are not running.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { decide, type Decision } from './decision.js';
import { resolveBridgeNetwork, type DockerNetworks } from './docker/network.js';
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
  /** Needed unless config.interface names the bridge. */
  docker?: () => DockerNetworks;
  log: Logger;
}

export interface Daemon {
  bridge: string;
  firewall: Firewall;
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
  const { bridge, subnet } = await findBridge(config, deps);
  const guard = new AddressGuard(config.allowCidrs, subnet ? [subnet] : []);
  const ipset = config.backend === 'ipset' ? requireIpset(deps) : undefined;
  const layout = { bridge, ports: config.ports };
  const firewall = new Firewall({
    ...(ipset
      ? { backend: new IpsetBackend({ iptables: deps.runner, ipset, layout, maxElements: Math.max(config.maxIps, DEFAULT_MAX_ELEMENTS) }) }
      : { runner: deps.runner, layout }),
    log: deps.log.child({ component: 'firewall' }),
    minTtl: config.minTtl,
    ttlGrace: config.ttlGrace,
    maxIps: config.maxIps,
    reconcileIntervalMs: config.reconcileInterval * 1000,
  });
  await firewall.start();

  const stats: PipelineStats = { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0 };
  const onFrame = frameHandler(policy, guard, firewall, stats, deps.log.child({ component: 'policy' }));
  const listener = await listenFrameStreams({
    path: config.listen,
    ...(config.socketUid !== undefined ? { socketUid: config.socketUid } : {}),
    ...(config.socketGid !== undefined ? { socketGid: config.socketGid } : {}),
    log: deps.log.child({ component: 'dnstap' }),
    onData: onFrame,
  });
  deps.log.info({ patterns: policy.patterns.map((p) => p.source) }, 'on-his-name is running');

  return {
    bridge,
    firewall,
    listener,
    stats,
    async close() {
      await listener.close();
      firewall.stop();
      // Rules still queued are worth a moment; a kernel that keeps refusing them is not worth hanging for.
      const settled = await Promise.race([firewall.settled().then(() => true), sleep(SHUTDOWN_GRACE_MS, false, { ref: false })]);
      if (!settled) deps.log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'stopping with addresses still waiting for the kernel');
      ipset?.close();
    },
  };
}

function requireIpset(deps: DaemonDeps): IpsetRunner {
  if (!deps.ipset) throw new ConfigError('--backend ipset needs the ipset command: apt-get install ipset');
  return deps.ipset();
}

async function findBridge(config: Config, deps: DaemonDeps): Promise<{ bridge: string; subnet?: string }> {
  if (config.interface) {
    deps.log.info({ interface: config.interface }, 'using host bridge interface, no Docker lookup');
    return { bridge: config.interface };
  }
  if (!deps.docker) throw new ConfigError('no Docker client: name the bridge with --interface');
  const network = await resolveBridgeNetwork(deps.docker(), config.network);
  if (!BRIDGE_NAME.test(network.bridge)) {
    throw new ConfigError(`Docker network "${network.name}" has an unusable bridge name "${network.bridge}"`);
  }
  deps.log.info(
    { network: network.name, bridge: network.bridge, subnet: network.subnet, dns: network.gateway },
    `containers should use --dns=${network.gateway ?? '<the network gateway>'} with the DNS server bound there`,
  );
  return { bridge: network.bridge, ...(network.subnet ? { subnet: network.subnet } : {}) };
}

function frameHandler(policy: Policy, guard: AddressGuard, firewall: Firewall, stats: PipelineStats, log: Logger) {
  let warnedNotFull = false;
  return (payload: Buffer, producer: Producer): void => {
    let decision: Decision;
    try {
      decision = decide(payload, policy, guard);
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
        const added = decision.ipv4.filter((r) => firewall.allow(r.address, decision.name, r.ttl) === 'queued');
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
