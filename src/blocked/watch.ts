/**
 * Every few seconds, drain what the kernel recorded as blocked (firewall/blocked.ts) into
 * the view, naming each attempt: the client's policy and container now, and the answer
 * that led there (looked up again for NAME_GRACE_MS while there is none). One log line for
 * each new (client, destination, port), never one per packet; a flood of new ones is a
 * few lines and a summary.
 */
import type { Logger } from 'pino';
import type { BlockedReader } from '../firewall/blocked.js';
import type { Clock, Timer } from '../util/clock.js';
import type { RecentAnswers } from './recent-answers.js';
import type { AttemptContext, BlockedEntry, BlockedView } from './view.js';

/** New destinations said in full per read; the rest are summed up in one line. */
export const LINES_PER_READ = 20;
/**
 * How long a new destination that no answer names yet waits to be said, looked up again at
 * each read. A DNS server's dnstap can reach us after its client got the answer and
 * connected (unbound flushes its dnstap queue every second), and a read can fall in
 * between: said at once, the destination would be "a hard-coded address" for good, and in
 * audit mode, where only the first packet of a connection meets the last rule, no later
 * packet would name it.
 */
export const NAME_GRACE_MS = 2_000;

export interface BlockedWatchOptions {
  readers: () => readonly BlockedReader[];
  view: BlockedView;
  answers: RecentAnswers;
  /** The client's policy and container, as known now. */
  who: (client: string) => Omit<AttemptContext, 'answer'>;
  intervalMs: number;
  clock: Clock;
  log: Logger;
}

export interface BlockedWatch {
  /** Drain now (the timer does this every interval); resolves when done. */
  read(): Promise<void>;
  stop(): void;
}

export function watchBlocked(options: BlockedWatchOptions): BlockedWatch {
  const { view, answers, clock, log } = options;
  let timer: Timer | undefined;
  let stopped = false;
  // Per family: one family failing must not hide the other's recovery, nor repeat itself.
  const failing = new Set<number>();
  let reading: Promise<void> | undefined;

  /** New destinations no answer named yet, with when they were first read. */
  let unnamed: Array<{ entry: BlockedEntry; since: number }> = [];

  const readOnce = async () => {
    const fresh: BlockedEntry[] = [];
    for (const reader of options.readers()) {
      try {
        const attempts = await reader.drain();
        const now = clock.now();
        for (const attempt of attempts) {
          const entry = view.add(attempt, { ...options.who(attempt.client), answer: answers.nameFor(attempt.client, attempt.address) }, now);
          if (entry?.answer) fresh.push(entry);
          else if (entry) unnamed.push({ entry, since: now });
        }
        if (failing.delete(reader.family)) log.info({ family: reader.family }, 'reading blocked attempts again');
      } catch (err) {
        if (!failing.has(reader.family)) log.warn({ family: reader.family, err: (err as Error).message }, 'cannot read the blocked attempts; retrying every interval');
        failing.add(reader.family);
      }
    }
    const now = clock.now();
    unnamed = unnamed.filter(({ entry, since }) => {
      entry.answer ??= answers.nameFor(entry.client, entry.address);
      if (!entry.answer && now - since < NAME_GRACE_MS) return true;
      fresh.push(entry);
      return false;
    });
    for (const entry of fresh.slice(0, LINES_PER_READ)) say(log, entry);
    if (fresh.length > LINES_PER_READ) {
      log.warn({ more: fresh.length - LINES_PER_READ, total: view.size }, `${fresh.length - LINES_PER_READ} more new blocked destinations in this read: see /api/blocked or on-his-name status`);
    }
  };
  const read = () => {
    reading ??= readOnce().finally(() => (reading = undefined));
    return reading;
  };
  const schedule = () => {
    if (stopped) return;
    timer = clock
      .setTimeout(() => {
        void read().finally(schedule);
      }, options.intervalMs)
      .unref();
  };
  schedule();
  return {
    read,
    stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
    },
  };
}

function say(log: Logger, entry: BlockedEntry): void {
  const name = entry.answer ? { name: entry.answer.name, nameAllowed: entry.answer.allowed } : { name: null };
  const fields = {
    client: entry.client,
    container: entry.container ?? null,
    policy: entry.policy,
    address: entry.address,
    protocol: entry.protocol,
    port: entry.port,
    ...name,
  };
  log.info(fields, entry.audit ? 'would block (audit)' : 'blocked');
}
