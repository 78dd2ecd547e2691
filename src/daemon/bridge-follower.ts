/**
 * The firewall follows the Docker network: docker/follow.ts says when the network came
 * back with another bridge or subnets, or when Docker came back after an outage; this
 * file says what the firewall does about it.
 *
 *   network re-created ─▶ guard refuses the new subnets ─▶ each Firewall.moveTo(new bridge)
 *     (new block with every open address first, then the old bridge's rules removed)
 *     ─▶ inline mode on the gateway: the DNS proxy moves to the new gateway
 *   Docker reconnected ─▶ each Firewall.reconcile() (dockerd's start may touch DOCKER-USER)
 */
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import type { DockerEvents } from '../docker/events.js';
import { followNetwork, type NetworkFollower } from '../docker/follow.js';
import type { BridgeNetwork, DockerNetworks } from '../docker/network.js';
import type { Firewall } from '../firewall/firewall.js';

export interface BridgeFollowerOptions {
  /** Without getEvents (a test's fake), the network is not followed. */
  docker: DockerNetworks & Partial<DockerEvents>;
  network: BridgeNetwork;
  firewall: Firewall;
  firewall6: Firewall | undefined;
  /** The network's subnets changed: refuse the new ones from now on. */
  onSubnets(network: BridgeNetwork): void;
  /** Inline mode on the gateway: answer DNS on the new one. Without it, the operator is told to move the DNS server. */
  onGateway?: (gateway: string | undefined) => Promise<void>;
  log: Logger;
  backoff?: BackoffPolicy;
  clock?: Clock;
}

export function followBridge(options: BridgeFollowerOptions): NetworkFollower | undefined {
  const { docker, firewall, firewall6, log } = options;
  if (!hasEvents(docker)) {
    log.warn('this Docker client cannot follow events: a re-created network will not be followed');
    return undefined;
  }
  const firewalls = [firewall, firewall6].filter((f): f is Firewall => f !== undefined);
  return followNetwork({
    docker,
    network: options.network,
    log,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    async onChange(next, previous) {
      options.onSubnets(next);
      if (next.gateway !== previous.gateway && !options.onGateway) {
        log.warn(
          { network: next.name, dns: next.gateway },
          `the network's gateway is now ${next.gateway ?? 'unknown'}: bind the DNS server there and give containers --dns=${next.gateway ?? '<the gateway>'}`,
        );
      }
      if (next.ipv6 && !firewall6) {
        log.error(
          { network: next.name, bridge: next.bridge },
          'the re-created network has IPv6 but no ip6tables filtering is installed: IPv6 egress is NOT filtered; restart on-his-name to filter it or refuse it',
        );
      }
      if (next.bridge !== previous.bridge) await Promise.all(firewalls.map((f) => f.moveTo(next.bridge)));
      // After the firewall: a container may only get answers once the new bridge is filtered.
      if (next.gateway !== previous.gateway) await options.onGateway?.(next.gateway);
    },
    async onReconnect() {
      await Promise.all(firewalls.map((f) => f.reconcile()));
    },
  });
}

function hasEvents(docker: DockerNetworks & Partial<DockerEvents>): docker is DockerNetworks & DockerEvents {
  return typeof docker.getEvents === 'function';
}
