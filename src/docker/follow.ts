/**
 * Follow the Docker network by name while the daemon runs.
 *
 *   events.ts ─network create/destroy, daemon events, (re)connect─▶ check ─resolve─▶
 *     same network: nothing · other bridge or subnets: onChange · gone: wait, said once
 *
 * Events are only a hint to look again: every check resolves the network afresh, so a
 * missed event (dockerd was down, the stream reconnected) costs nothing. Checks run one at
 * a time; events arriving meanwhile coalesce into one more check.
 */
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import { ConfigError } from '../util/errors.js';
import { followEvents, type DockerEvent, type DockerEvents, type EventFollower } from './events.js';
import { resolveBridgeNetwork, waitableFailure, type BridgeNetwork, type DockerNetworks } from './network.js';

export interface NetworkFollowerOptions {
  docker: DockerNetworks & DockerEvents;
  /** The network as resolved at start. */
  network: BridgeNetwork;
  /** The network is back with another bridge, id or subnets; resolves once the firewall follows. */
  onChange(next: BridgeNetwork, previous: BridgeNetwork): Promise<void>;
  /** Docker came back after an outage (its start may have touched DOCKER-USER): reconcile now. */
  onReconnect(): Promise<void>;
  log: Logger;
  backoff?: BackoffPolicy;
  /** For the event stream's backoff; systemClock by default. */
  clock?: Clock;
}

export interface NetworkFollower {
  /** The network as last resolved (the last one seen while it is gone). */
  readonly network: BridgeNetwork;
  /** True while the network does not exist. */
  readonly gone: boolean;
  /** Resolves when no check is running or pending (for tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** Network events that change nothing for us, and come with every container start and stop. */
const IGNORED_ACTIONS = new Set(['connect', 'disconnect']);

export function followNetwork(options: NetworkFollowerOptions): NetworkFollower {
  const { docker, log } = options;
  const name = options.network.name;
  let network = options.network;
  let gone = false;
  let lastError: string | undefined;
  let pending: { reconcile: boolean } | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const check = (reconcile: boolean) => {
    if (stopped) return;
    pending = { reconcile: reconcile || (pending?.reconcile ?? false) };
    running ??= work();
  };

  const work = async () => {
    while (pending && !stopped) {
      const { reconcile } = pending;
      pending = undefined;
      try {
        await look();
        if (reconcile && !stopped) await options.onReconnect();
      } catch (err) {
        log.error({ err: (err as Error).message }, `following network ${name} failed; looking again on the next event`);
      }
    }
    // In the same tick as the last look at `pending`: a check arriving later starts a new run.
    running = undefined;
  };

  const look = async () => {
    let next: BridgeNetwork;
    try {
      next = await resolveBridgeNetwork(docker, name);
    } catch (err) {
      const why = waitableFailure(err);
      if (why === 'missing' && !gone) {
        gone = true;
        log.warn({ network: name, bridge: network.bridge }, `network ${name} is gone; waiting for it: docker network create ${name}`);
      } else if (why === 'unreachable') {
        log.debug({ err: (err as Error).message }, 'Docker does not answer; the event stream will say when it is back');
      } else if (!why && (err as Error).message !== lastError) {
        lastError = (err as Error).message;
        log.error({ err: lastError }, `cannot follow network ${name}; still filtering bridge ${network.bridge}`);
      }
      return;
    }
    lastError = undefined;
    const previous = network;
    if (gone) log.info({ network: name, id: next.id, bridge: next.bridge }, `network ${name} is back`);
    gone = false;
    if (!changed(previous, next)) return;
    log.info(
      { network: name, from: { id: previous.id, bridge: previous.bridge, subnet: previous.subnet }, to: { id: next.id, bridge: next.bridge, subnet: next.subnet } },
      next.bridge === previous.bridge ? `network ${name} changed` : `network ${name} moved to bridge ${next.bridge}: moving our rules`,
    );
    try {
      await options.onChange(next, previous);
      network = next;
    } catch (err) {
      // A ConfigError: the new network is not one we can filter; look again on the next event.
      if (!(err instanceof ConfigError)) throw err;
      log.error({ err: err.message }, `cannot follow network ${name}; still filtering bridge ${previous.bridge}`);
    }
  };

  const onEvent = (event: DockerEvent) => {
    if (event.type === 'daemon') return check(true);
    if (event.type !== 'network' || IGNORED_ACTIONS.has(event.action)) return;
    if (event.attributes.name === name || event.id === network.id) check(false);
  };

  const events: EventFollower = followEvents({
    docker,
    filters: { type: ['network', 'daemon'] },
    onEvent,
    onConnect: (reconnected) => check(reconnected),
    log,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });

  return {
    get network() {
      return network;
    },
    get gone() {
      return gone;
    },
    async idle() {
      while (running) await running;
    },
    /** Stop listening; a check already running finishes on its own (a move may wait on the kernel). */
    async stop() {
      stopped = true;
      await events.stop();
    },
  };
}

function changed(a: BridgeNetwork, b: BridgeNetwork): boolean {
  return a.id !== b.id || a.bridge !== b.bridge || a.gateway !== b.gateway || a.subnet !== b.subnet || a.subnet6 !== b.subnet6 || a.ipv6 !== b.ipv6;
}
