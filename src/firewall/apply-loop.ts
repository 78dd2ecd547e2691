/**
 * One kernel change at a time, retried through backoff.ts when it fails, until there is
 * nothing left to do. The firewall says what the next step is; this file owns when it
 * runs: a step is started on the next turn of the event loop (so that every answer of a
 * socket chunk joins the same batch), a failure waits before the retry, and stop() ends
 * the loop at once, retry wait included, so that a kernel that keeps refusing never keeps
 * the process alive or starts a change after the runners are closed.
 */
import { reconnectDelay, type BackoffPolicy } from '../util/backoff.js';
import { systemClock, type Clock } from '../util/clock.js';

/**
 * What a step did: 'changed' the kernel (a failure before it is over: the backoff starts
 * again from the bottom), 'prepared' a retry without changing anything (read the kernel
 * again: the change that failed has not landed yet, so the backoff keeps climbing), or
 * 'idle': nothing left to do.
 */
export type StepResult = 'changed' | 'prepared' | 'idle';

export interface ApplyLoopOptions {
  /** Do the next change. */
  step(): Promise<StepResult>;
  /** A step failed: count it, say why, and prepare the retry (e.g. read the kernel again). */
  onFailure(err: unknown, attempt: number, retryInMs: number): void;
  /** The loop has nothing left to do: the kernel holds what is wanted. */
  onIdle?(): void;
  backoff: BackoffPolicy;
  /** For tests: no jitter. */
  random?: () => number;
  /** What the retry waits on; systemClock unless a test moves time itself. */
  clock?: Clock;
}

export class ApplyLoop {
  private running: Promise<void> | undefined;
  /** A kick since the current step began: work the step may not have seen. */
  private kicked = false;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: ApplyLoopOptions) {}

  /** Make sure a run is under way or about to start. */
  kick(): void {
    this.kicked = true;
    if (this.running || this.stopped) return;
    this.running = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  /** Resolves when no run is under way (after stop(), once the current step has ended). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  /**
   * A step that finds nothing to do resolves a few microtasks after it looked: a kick in
   * between (an answer decided in another promise chain) would find the loop still running
   * and leave its work for the next kick. So each step starts by clearing `kicked`, the loop
   * only ends when no kick came since, and it is marked ended in that same microtask.
   */
  private async run(): Promise<void> {
    let attempt = 0;
    try {
      while (!this.stopped) {
        this.kicked = false;
        try {
          const result = await this.options.step();
          if (result === 'idle') {
            if (this.kicked) continue;
            this.options.onIdle?.();
            return;
          }
          if (result === 'changed') attempt = 0;
        } catch (err) {
          const delay = reconnectDelay(attempt, this.options.backoff, this.options.random);
          this.options.onFailure(err, ++attempt, delay);
          await wait(this.options.clock ?? systemClock, delay, this.abort.signal);
        }
      }
    } finally {
      this.running = undefined;
    }
  }
}

/** A pause that stop() cuts short, and that never keeps the process alive on its own. */
function wait(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.setTimeout(done, ms).unref();
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clock.clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
