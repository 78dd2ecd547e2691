/**
 * The firewall follows the Docker network: docker/follow.ts says when the network came
 * back with another bridge or subnets, or when Docker came back after an outage; this
 * file says what the firewall does about it.
 *
 *   network re-created ─▶ read the new bridge (filtered-bridge.ts) ─▶ guard refuses the new subnets
 *     ─▶ each Firewall.moveTo(new bridge, its subnets and DNS targets)
 *        (new block with every open address first, then the old bridge's rules removed)
 *     ─▶ inline mode on the gateway: the DNS proxy moves to the new gateway
 *   Docker reconnected ─▶ each Firewall.reconcile() (dockerd's start may touch DOCKER-USER)
 *
 * A network re-created with IPv6 that no firewall here can filter is what the daemon
 * refuses at start, so it is fatal here too: the daemon exits (its IPv4 rules stay, fail
 * closed) instead of running with IPv6 open and only a line in the log.
 */
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import type { DockerEvents } from '../docker/events.js';
import { followNetwork, type NetworkFollower } from '../docker/follow.js';
import type { BridgeNetwork, DockerNetworks } from '../docker/network.js';
import { refuseIpv6, type FilteredBridge } from './filtered-bridge.js';
import type { PolicyFirewalls } from './policy-firewalls.js';

export interface BridgeFollowerOptions {
  /** Without getEvents (a test's fake), the network is not followed. */
  docker: DockerNetworks & Partial<DockerEvents>;
  network: BridgeNetwork;
  /** Every policy's firewalls: they move together. */
  firewalls: PolicyFirewalls;
  /** How the re-created network's bridge looks to the firewall. */
  viewOf(network: BridgeNetwork): Promise<FilteredBridge>;
  /** The network's subnets changed: refuse the new ones from now on. */
  onSubnets(view: FilteredBridge): void;
  /** Inline mode on the gateway: answer DNS on the new one. Without it, the operator is told to move the DNS server. */
  onGateway?: (gateway: string | undefined) => Promise<void>;
  /** The new network cannot be filtered as the daemon promised. */
  onFatal(err: Error): void;
  log: Logger;
  backoff?: BackoffPolicy;
  clock?: Clock;
}

export function followBridge(options: BridgeFollowerOptions): NetworkFollower | undefined {
  const { docker, firewalls, log } = options;
  if (!hasEvents(docker)) {
    log.warn('this Docker client cannot follow events: a re-created network will not be followed');
    return undefined;
  }
  return followNetwork({
    docker,
    network: options.network,
    log,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    async onChange(next, previous) {
      const view = await options.viewOf(next);
      options.onSubnets(view);
      if (next.gateway !== previous.gateway && !options.onGateway) {
        log.warn(
          { network: next.name, dns: next.gateway },
          `the network's gateway is now ${next.gateway ?? 'unknown'}: bind the DNS server there and give containers --dns=${next.gateway ?? '<the gateway>'}`,
        );
      }
      await firewalls.moveTo(view);
      if (view.ipv6Because && !firewalls.ipv6) {
        options.onFatal(refuseIpv6(view.ipv6Because, 'the daemon started without IPv6 filtering; restart it to filter or refuse the new network'));
      }
      // After the firewall: a container may only get answers once the new bridge is filtered.
      if (next.gateway !== previous.gateway) await options.onGateway?.(next.gateway);
    },
    async onReconnect() {
      await firewalls.reconcile();
    },
  });
}

function hasEvents(docker: DockerNetworks & Partial<DockerEvents>): docker is DockerNetworks & DockerEvents {
  return typeof docker.getEvents === 'function';
}
