import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogSummary } from '../../../src/util/log-summary.js';
import { recordingLogger } from '../../support/log.js';

beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
afterEach(() => vi.useRealTimers());

describe('LogSummary', () => {
  it('logs the first occurrence in full, then one line per second with the latest and the count', () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'queue full');
    for (let i = 0; i < 10_000; i++) summary.warn({ address: `a${i}` });
    expect(lines).toEqual([expect.objectContaining({ msg: 'queue full', address: 'a0', level: 40 })]);
    vi.advanceTimersByTime(1_000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ msg: 'queue full', address: 'a9999', repeated: 9_999, withinMs: 1_000 });
    for (let i = 0; i < 5; i++) summary.warn({ address: `b${i}` });
    expect(lines).toHaveLength(2); // still inside the next second
    vi.advanceTimersByTime(1_000);
    expect(lines[2]).toMatchObject({ address: 'b4', repeated: 5 });
  });

  it('logs a lone occurrence after a quiet second at once, and flushes what it holds on demand', () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'evicted');
    summary.warn({ n: 1 });
    vi.advanceTimersByTime(5_000);
    summary.warn({ n: 2 });
    summary.warn({ n: 3 });
    expect(lines.map((l) => l.n)).toEqual([1, 2]);
    summary.flush();
    expect(lines.at(-1)).toMatchObject({ n: 3, repeated: 1 });
    summary.flush();
    expect(lines).toHaveLength(3);
  });
});

describe('LogSummary with a burst allowance', () => {
  it('logs the first `burst` occurrences of each second in full, then summarises', () => {
    const { log, lines } = recordingLogger();
    const summary = new LogSummary(log, 'skipped', { burst: 3 });
    for (let i = 0; i < 100; i++) summary.warn({ i });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
    vi.advanceTimersByTime(1_000);
    expect(lines.at(-1)).toMatchObject({ i: 99, repeated: 97 });
    vi.advanceTimersByTime(1_000);
    for (let i = 0; i < 2; i++) summary.warn({ i: 200 + i });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2, 99, 200, 201]);
  });
});
