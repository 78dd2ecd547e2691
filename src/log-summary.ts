/**
 * A warning that can fire thousands of times a second (a full queue, the address limit, a
 * producer sending garbage) is logged at most once per interval: the first occurrence in
 * full, then one line per interval with the latest occurrence and how many there were.
 * Counters (stats, metrics) stay exact; only the log is thinned.
 */
import type { Logger } from 'pino';

export const SUMMARY_INTERVAL_MS = 1_000;

export class LogSummary {
  private repeated = 0;
  private latest: Record<string, unknown> = {};
  private quietUntil = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly msg: string,
    private readonly intervalMs = SUMMARY_INTERVAL_MS,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now >= this.quietUntil && this.timer === undefined) {
      this.log.warn(fields, this.msg);
      this.quietUntil = now + this.intervalMs;
      return;
    }
    this.repeated++;
    this.latest = fields;
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.quietUntil - now)).unref();
  }

  /** Log what is held back now (at shutdown, or when the interval ends). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.repeated === 0) return;
    this.log.warn({ ...this.latest, repeated: this.repeated, withinMs: this.intervalMs }, this.msg);
    this.repeated = 0;
    this.latest = {};
    this.quietUntil = Date.now() + this.intervalMs;
  }
}
