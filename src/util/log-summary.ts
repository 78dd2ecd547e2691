/**
 * A warning that can fire thousands of times a second (a full queue, the address limit, a
 * producer sending garbage) is logged at most `burst` times per interval in full, then
 * once at the interval's end with the latest occurrence and how many were held back.
 * Counters (stats, metrics) stay exact; only the log is thinned.
 */
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from './clock.js';

export const SUMMARY_INTERVAL_MS = 1_000;

export class LogSummary {
  private readonly intervalMs: number;
  private readonly burst: number;
  private repeated = 0;
  private latest: Record<string, unknown> = {};
  private windowEnds = 0;
  private linesInWindow = 0;
  private timer: Timer | undefined;
  private readonly clock: Clock;

  constructor(
    private readonly log: Logger,
    private readonly msg: string,
    options: { intervalMs?: number; burst?: number; clock?: Clock } = {},
  ) {
    this.intervalMs = options.intervalMs ?? SUMMARY_INTERVAL_MS;
    this.burst = options.burst ?? 1;
    this.clock = options.clock ?? systemClock;
  }

  warn(fields: Record<string, unknown>): void {
    const now = this.clock.now();
    if (this.timer === undefined) {
      if (now >= this.windowEnds) {
        this.windowEnds = now + this.intervalMs;
        this.linesInWindow = 0;
      }
      if (this.linesInWindow < this.burst) {
        this.linesInWindow++;
        this.log.warn(fields, this.msg);
        return;
      }
    }
    this.repeated++;
    this.latest = fields;
    this.timer ??= this.clock.setTimeout(() => this.flush(), Math.max(0, this.windowEnds - now)).unref();
  }

  /** Log what is held back now (at shutdown, or when the interval ends). */
  flush(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.repeated === 0) return;
    this.log.warn({ ...this.latest, repeated: this.repeated, withinMs: this.intervalMs }, this.msg);
    this.repeated = 0;
    this.latest = {};
    this.windowEnds = this.clock.now() + this.intervalMs;
    this.linesInWindow = this.burst; // the summary used this window's lines
  }
}
