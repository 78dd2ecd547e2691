import { beforeEach, describe, expect, it } from 'vitest';
import { LogSummary } from '../../../src/util/log-summary.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';

let clock: FakeClock;
beforeEach(() => {
  clock = new FakeClock(1_000_000);
});

describe('LogSummary', () => {
  it('logs the first occurrence in full, then one line per second with the latest and the count', async () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'queue full', { clock });
    for (let i = 0; i < 10_000; i++) summary.warn({ address: `a${i}` });
    expect(lines).toEqual([expect.objectContaining({ msg: 'queue full', address: 'a0', level: 40 })]);
    await clock.advance(999);
    expect(lines).toHaveLength(1); // not before the second is over
    await clock.advance(1);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ msg: 'queue full', address: 'a9999', repeated: 9_999, withinMs: 1_000 });
    for (let i = 0; i < 5; i++) summary.warn({ address: `b${i}` });
    expect(lines).toHaveLength(2); // still inside the next second
    await clock.advance(999);
    expect(lines).toHaveLength(2);
    await clock.advance(1);
    expect(lines[2]).toMatchObject({ address: 'b4', repeated: 5 });
    await clock.advance(10_000);
    expect(lines).toHaveLength(3); // nothing held back, nothing more to say
    expect(clock.pending).toBe(0);
  });

  it('logs a lone occurrence after a quiet second at once, and flushes what it holds on demand', async () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'evicted', { clock });
    summary.warn({ n: 1 });
    await clock.advance(5_000);
    summary.warn({ n: 2 });
    summary.warn({ n: 3 });
    expect(lines.map((l) => l.n)).toEqual([1, 2]);
    summary.flush();
    expect(lines.at(-1)).toMatchObject({ n: 3, repeated: 1 });
    summary.flush();
    expect(lines).toHaveLength(3);
    await clock.advance(5_000);
    expect(lines).toHaveLength(3); // the flush took the timer with it: no second summary
  });

  it('counts the window from the summary it flushed on demand', async () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'evicted', { clock });
    summary.warn({ n: 1 });
    summary.warn({ n: 2 });
    await clock.advance(500);
    summary.flush();
    expect(lines.map((l) => l.n)).toEqual([1, 2]);
    summary.warn({ n: 3 }); // within a second of the summary: held back
    expect(lines).toHaveLength(2);
    await clock.advance(999);
    expect(lines).toHaveLength(2);
    await clock.advance(1);
    expect(lines.at(-1)).toMatchObject({ n: 3, repeated: 1 });
  });
});

describe('LogSummary with a burst allowance', () => {
  it('logs the first `burst` occurrences of each second in full, then summarises', async () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'skipped', { burst: 3, clock });
    for (let i = 0; i < 100; i++) summary.warn({ i });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
    await clock.advance(1_000);
    expect(lines.at(-1)).toMatchObject({ i: 99, repeated: 97 });
    await clock.advance(1_000);
    for (let i = 0; i < 2; i++) summary.warn({ i: 200 + i });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2, 99, 200, 201]);
  });
});
