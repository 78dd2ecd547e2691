import { afterEach, describe, expect, it, vi } from 'vitest';
import { every, sleep, systemClock } from '../../../src/util/clock.js';
import { FakeClock } from '../../support/clock.js';

afterEach(() => vi.useRealTimers());

describe('systemClock', () => {
  it("is Date.now and Node's timers, looked up at each call", () => {
    vi.useFakeTimers({ now: 5_000 });
    const fired: number[] = [];
    systemClock.setTimeout(() => fired.push(1), 10);
    const cancelled = systemClock.setTimeout(() => fired.push(2), 10);
    systemClock.clearTimeout(cancelled);
    expect(systemClock.setTimeout(() => undefined, 1).unref()).toBeDefined();
    expect(systemClock.now()).toBe(5_000);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([1]);
    expect(systemClock.now()).toBe(5_010);
  });
});

describe('FakeClock', () => {
  it('fires due timers in order of due time, then of setting, with the clock at each moment', async () => {
    const clock = new FakeClock(1_000);
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, clock.now()]);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a'), 10);
    clock.setTimeout(at('b'), 10);
    clock.setTimeout(at('late'), 31);
    await clock.advance(30);
    expect(fired).toEqual([['a', 1_010], ['b', 1_010], ['c', 1_030]]);
    expect(clock.now()).toBe(1_030);
    expect(clock.pending).toBe(1);
    expect(clock.nextIn).toBe(1);
  });

  it("fires a timer set on the way, by a callback or by code that awaited first, if it falls due within the step", async () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      void Promise.resolve()
        .then(() => undefined)
        .then(() => clock.setTimeout(() => fired.push(clock.now()), 5));
    }, 5);
    await clock.advance(12);
    expect(fired).toEqual([5, 10]);
  });

  it('treats a delay under 1 ms as 1 ms, as Node does, and skips cleared timers', async () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('zero'), 0);
    clock.clearTimeout(clock.setTimeout(() => fired.push('cleared'), 1));
    await clock.advance(0);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual(['zero']);
    expect(clock.pending).toBe(0);
  });

  it('runNext() moves to the next timer; nextTimer() resolves when one is set', async () => {
    const clock = new FakeClock(0);
    await expect(clock.runNext()).rejects.toThrow(/no timer/);
    let set = false;
    const waiting = clock.nextTimer().then(() => (set = true));
    await Promise.resolve();
    expect(set).toBe(false);
    let fired = false;
    clock.setTimeout(() => (fired = true), 250);
    await waiting;
    await clock.runNext();
    expect(fired).toBe(true);
    expect(clock.now()).toBe(250);
  });
});

describe('sleep', () => {
  it('resolves when the clock reaches its end, not before', async () => {
    const clock = new FakeClock(0);
    let done = false;
    const sleeping = sleep(clock, 100).then(() => (done = true));
    await clock.advance(99);
    expect(done).toBe(false);
    await clock.advance(1);
    await sleeping;
    expect(done).toBe(true);
  });

  it('rejects with an AbortError when aborted, before or while sleeping, and clears its timer', async () => {
    const clock = new FakeClock(0);
    const abort = new AbortController();
    const sleeping = sleep(clock, 100, abort.signal);
    expect(clock.pending).toBe(1);
    abort.abort();
    await expect(sleeping).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(clock.pending).toBe(0);
    await expect(sleep(clock, 100, abort.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(clock.pending).toBe(0);
  });
});

describe('every', () => {
  it('calls on the beat, not before, keeps the beat when a call throws, and stops for good', async () => {
    const clock = new FakeClock(0);
    const calls: number[] = [];
    const beat = every(clock, 100, () => {
      calls.push(clock.now());
      if (calls.length === 2) throw new Error('a failing call');
    });
    await clock.advance(99);
    expect(calls).toEqual([]);
    await clock.advance(1);
    expect(calls).toEqual([100]);
    await expect(clock.advance(100)).rejects.toThrow('a failing call');
    await clock.advance(200);
    expect(calls).toEqual([100, 200, 300, 400]);
    beat.stop();
    expect(clock.pending).toBe(0);
    await clock.advance(1_000);
    expect(calls).toHaveLength(4);
  });
});
