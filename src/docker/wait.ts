/**
 * `--wait-for-network`: at start, wait for the Docker network (and for Docker itself)
 * instead of exiting, with a progress line now and then. Nothing is filtered meanwhile,
 * and nothing needs to be: a network that does not exist carries no container. Once it
 * exists, a container may start on it at any moment, so Docker's `create` event ends the
 * wait at once; polling only covers a client without events or an event missed.
 */
import type { Logger } from 'pino';
import { sleep, systemClock, type Clock } from '../util/clock.js';
import { followEvents, type DockerEvents } from './events.js';
import { resolveBridgeNetwork, waitableFailure, type BridgeNetwork, type DockerNetworks } from './network.js';

export interface WaitOptions {
  /** How often to ask Docker again. */
  pollMs?: number;
  /** How often to say that we are still waiting. */
  progressMs?: number;
  signal?: AbortSignal;
  /** For the polls, the progress lines and the event stream's backoff; systemClock unless a test moves time itself. */
  clock?: Clock;
}

export async function waitForNetwork(
  docker: DockerNetworks & Partial<DockerEvents>,
  name: string,
  log: Logger,
  options: WaitOptions = {},
): Promise<BridgeNetwork> {
  const pollMs = options.pollMs ?? 1_000;
  const progressMs = options.progressMs ?? 30_000;
  const clock = options.clock ?? systemClock;
  const started = clock.now();
  const nudge = nudgedByEvents(docker, name, log, clock);
  let said: { why: string; at: number } | undefined;
  try {
    for (;;) {
      try {
        const network = await resolveBridgeNetwork(docker, name);
        if (said) log.info({ network: name, waitedSeconds: Math.round((clock.now() - started) / 1000) }, `network ${name} is there: starting`);
        return network;
      } catch (err) {
        const why = waitableFailure(err);
        if (!why) throw err;
        const now = clock.now();
        if (!said || said.why !== why || now - said.at >= progressMs) {
          const what = why === 'missing' ? `docker network create ${name}` : 'start dockerd';
          log.info({ network: name, waitedSeconds: Math.round((now - started) / 1000), reason: (err as Error).message }, `waiting for network ${name} (--wait-for-network): ${what}`);
          said = { why, at: now };
        }
      }
      await Promise.race([sleep(clock, pollMs, options.signal), nudge.next()]);
    }
  } finally {
    await nudge.stop();
  }
}

/** Resolves next() when Docker says something happened to a network of this name (or its stream reconnects). */
function nudgedByEvents(docker: DockerNetworks & Partial<DockerEvents>, name: string, log: Logger, clock: Clock) {
  let wake: () => void = () => undefined;
  const getEvents = docker.getEvents?.bind(docker);
  // The wait's own lines say when Docker is away; the stream's would say it twice.
  const events = getEvents
    ? followEvents({
        docker: { getEvents },
        filters: { type: ['network'] },
        onEvent: (event) => {
          if (event.attributes.name === name) wake();
        },
        onConnect: () => wake(),
        log: log.child({}, { level: 'error' }),
        clock,
      })
    : undefined;
  return {
    next: () => new Promise<void>((resolve) => (wake = resolve)),
    stop: async () => events?.stop(),
  };
}
