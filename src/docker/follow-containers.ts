/**
 * The containers on the network, kept current from Docker's events, for per-container
 * policies (policy/clients.ts).
 *
 *   events.ts ─container start/die/destroy, network connect/disconnect, (re)connect─▶
 *     list the network's containers (containers.ts) ─▶ onContainers(the whole list)
 *
 * As with the network follower, an event is only a hint to look again: every look lists
 * the running containers on the network afresh, so a missed event (dockerd was down, the
 * stream reconnected) costs nothing. Looks run one at a time; events arriving meanwhile
 * coalesce into one more look.
 */
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import { containersOnNetwork, type AttachedContainer, type DockerContainers, type NetworkRef } from './containers.js';
import { followEvents, type DockerEvent, type DockerEvents } from './events.js';

export interface ContainerFollowerOptions {
  docker: DockerContainers & DockerEvents;
  /** The network to watch; read at each look, so it follows a re-created network. */
  network: () => NetworkRef;
  onContainers(containers: AttachedContainer[]): Promise<void>;
  log: Logger;
  backoff?: BackoffPolicy;
  clock?: Clock;
}

export interface ContainerFollower {
  /** Resolves when no look is running or pending (for tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

const CONTAINER_ACTIONS = new Set(['start', 'die', 'destroy', 'kill', 'stop', 'restart', 'unpause', 'pause']);
const NETWORK_ACTIONS = new Set(['connect', 'disconnect']);

export function followContainers(options: ContainerFollowerOptions): ContainerFollower {
  const { docker, log } = options;
  let pending = false;
  let running: Promise<void> | undefined;
  let stopped = false;

  const look = () => {
    if (stopped) return;
    pending = true;
    running ??= work();
  };
  const work = async () => {
    while (pending && !stopped) {
      pending = false;
      try {
        const containers = await containersOnNetwork(docker, options.network());
        if (!stopped) await options.onContainers(containers);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot list the containers on the network; looking again on the next event');
      }
    }
    running = undefined;
  };

  const onEvent = (event: DockerEvent) => {
    if (event.type === 'container' && CONTAINER_ACTIONS.has(event.action)) return look();
    if (event.type === 'network' && NETWORK_ACTIONS.has(event.action)) {
      const network = options.network();
      if (event.attributes.name === network.name || event.id === network.id) look();
    }
  };

  const events = followEvents({
    docker,
    filters: { type: ['container', 'network'] },
    onEvent,
    onConnect: () => look(),
    log,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return {
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      await events.stop();
      await running;
    },
  };
}
