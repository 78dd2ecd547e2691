/**
 * Reconnect delays while a peer is away (a listening dnstap producer, Docker's event
 * stream): exponential from `initialMs` up to `maxMs`, with jitter so that several readers
 * of one restarted peer do not dial it in lockstep. Pure: the attempt number and a random source in, milliseconds out.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** Quick enough to catch a CoreDNS reload within a fraction of a second; gentle on one that is down for long. */
export const RECONNECT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000 };

/**
 * The delay before reconnect attempt `attempt` (0 for the first): the exponential step,
 * capped, then drawn uniformly from its upper half ("equal jitter"), so it never drops to zero.
 */
export function reconnectDelay(attempt: number, policy: BackoffPolicy = RECONNECT_BACKOFF, random: () => number = Math.random): number {
  const step = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + (step / 2) * random());
}
