/**
 * A Clock that moves only when the test says so. advance(ms) fires every timer that falls
 * due on the way, in order (by due time, then by when it was set), with the clock set to
 * each one's moment, and lets the code under test run between them (settle(): pending
 * promises and two turns of the event loop), so that a timer set by a callback, or by code
 * that awaited something first, is fired too if it falls inside the step.
 *
 * Real I/O (a socket that connects, a child process) still takes real time: wait for its
 * effect on an event (nextTimer(), a log line, a counter), then move the clock again.
 */
import type { Clock, Timer } from '../../src/util/clock.js';

/** Captured before any test can fake the globals. */
const realSetImmediate = globalThis.setImmediate;
const turn = (): Promise<void> => new Promise((resolve) => realSetImmediate(resolve));
/**
 * Pending promise callbacks and process.nextTick, then two turns of the event loop: two, so
 * that whatever phase we start in, the loop passes its close phase, where a socket that a
 * fired timer destroyed emits 'close'. (I/O that waits on the kernel or a peer may need more.)
 */
export const settle = async (): Promise<void> => {
  await turn();
  await turn();
};

/** Node's own bound: a delay outside [1, 2^31 - 1] ms becomes 1 ms. */
const TIMEOUT_MAX = 2 ** 31 - 1;

class FakeTimer implements Timer {
  constructor(
    readonly at: number,
    readonly seq: number,
    readonly fn: () => void,
  ) {}
  unref(): Timer {
    return this;
  }
}

export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();
  private waiters: Array<() => void> = [];

  /** Starts at a fixed, ordinary-looking moment (2023-11-14T22:13:20Z) unless told otherwise. */
  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const delay = ms >= 1 && ms <= TIMEOUT_MAX ? ms : 1;
    const timer = new FakeTimer(this.current + delay, this.seq++, fn);
    this.timers.add(timer);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return timer;
  }

  clearTimeout(timer: Timer): void {
    this.timers.delete(timer as FakeTimer);
  }

  /** Timers set and neither fired nor cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** How far away the next timer is, in ms; undefined when none is set. */
  get nextIn(): number | undefined {
    const next = this.earliest();
    return next && next.at - this.current;
  }

  /** Resolves once a timer is set (at once if one is). */
  nextTimer(): Promise<void> {
    if (this.timers.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Move time forward by `ms`, firing what falls due on the way. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new Error(`FakeClock.advance(${ms}): time only moves forward`);
    const end = this.current + ms;
    await settle();
    for (let next = this.earliest(); next && next.at <= end; next = this.earliest()) {
      this.timers.delete(next);
      this.current = next.at;
      next.fn();
      await settle();
    }
    this.current = end;
  }

  /** Move time to the next timer and fire it (and whatever else is due then); fails when none is set. */
  async runNext(): Promise<void> {
    const inMs = this.nextIn;
    if (inMs === undefined) throw new Error('FakeClock.runNext(): no timer is set');
    await this.advance(inMs);
  }

  private earliest(): FakeTimer | undefined {
    let first: FakeTimer | undefined;
    for (const t of this.timers) if (!first || t.at < first.at || (t.at === first.at && t.seq < first.seq)) first = t;
    return first;
  }
}
