/**
 * Inline mode's promise to its clients: an allowed answer reaches the container only once
 * the firewall has its addresses, so the first SYN meets an ACCEPT, not the DROP. The wait
 * is bounded (--dns-hold-ms): a kernel slower than that gets the answer released anyway,
 * counted and logged, since a late answer costs the client more than a retransmitted SYN.
 * With --deny-nxdomain a denied name is answered NXDOMAIN here and never asked upstream,
 * which also keeps containers from tunnelling data out through DNS queries.
 */
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { LogSummary } from '../util/log-summary.js';
import type { Pipeline } from './pipeline.js';
import { reply, type Query } from '../dns-proxy/message.js';
import type { ProxyHooks } from '../dns-proxy/server.js';

export interface HoldOptions {
  pipeline: Pipeline;
  holdMs: number;
  denyNxdomain: boolean;
  log: Logger;
  /** Monotonic milliseconds, for the hold's length; injectable for tests. */
  now?: () => number;
  /** What the hold's bound and the warnings' summary run on; systemClock unless a test moves time itself. */
  clock?: Clock;
}

export interface HoldStats {
  /** Allowed answers that waited for their rules. */
  held: number;
  /** ... and were released before the rules were in (hold bound reached). */
  releasedEarly: number;
  /** ... whose addresses will never open (dropped or refused by the firewall's bounds). */
  notOpened: number;
  /** Denied names answered NXDOMAIN (--deny-nxdomain). */
  nxdomain: number;
  lastHoldMs: number;
  maxHoldMs: number;
}

export function holdUntilOpen(options: HoldOptions): ProxyHooks & { stats: Readonly<HoldStats>; flush(): void } {
  const { pipeline, log } = options;
  const now = options.now ?? (() => performance.now());
  const clock = options.clock ?? systemClock;
  const stats: HoldStats = { held: 0, releasedEarly: 0, notOpened: 0, nxdomain: 0, lastHoldMs: 0, maxHoldMs: 0 };
  // A kernel that refuses changes releases every held answer early: a few lines, then a count.
  const releasedEarly = new LogSummary(
    log,
    'released a DNS answer before its rules reached the kernel: the first packets may be dropped (is the firewall slow? raise --dns-hold-ms)',
    { burst: 5, clock },
  );

  const nxdomain = (query: Query): Buffer => {
    stats.nxdomain++;
    return reply(query, 'NXDOMAIN');
  };

  return {
    stats,
    flush: () => releasedEarly.flush(),
    answerLocally(query, client) {
      if (!options.denyNxdomain || pipeline.admits(query.name, client)) return undefined;
      return nxdomain(query);
    },
    async release(upstreamReply, query, client) {
      // The hold's end also takes the answer's waiters off the firewall's books.
      const hold = new AbortController();
      // One waiter per address of the answer listens to it: a 40-address answer is no leak.
      setMaxListeners(0, hold.signal);
      const opened = pipeline.onResponse(upstreamReply, client, hold.signal);
      if (!opened || opened.decision.outcome !== 'allow') return upstreamReply;
      const started = now();
      const outcome = await within(clock, opened.inKernel, options.holdMs, hold);
      const waited = now() - started;
      stats.held++;
      stats.lastHoldMs = waited;
      stats.maxHoldMs = Math.max(stats.maxHoldMs, waited);
      if (outcome === 'timeout') {
        stats.releasedEarly++;
        releasedEarly.warn({ name: opened.decision.name, client, holdMs: options.holdMs, releasedEarly: stats.releasedEarly });
      } else if (outcome === false) {
        stats.notOpened++;
      }
      return upstreamReply;
    },
  };
}

/** The promise's value, or 'timeout' after `ms`, when `hold` is aborted so that its waiters leave. */
function within(clock: Clock, promise: Promise<boolean>, ms: number, hold: AbortController): Promise<boolean | 'timeout'> {
  let timer: Timer | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = clock.setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clock.clearTimeout(timer!);
    hold.abort();
  });
}
