import { describe, expect, it } from 'vitest';
import { RECONNECT_BACKOFF, reconnectDelay } from '../../../src/util/backoff.js';
import { seededRandom } from '../../support/framestream.js';

describe('reconnectDelay', () => {
  it('doubles from 100 ms up to 5 s; the jitter draws from the upper half of each step', () => {
    const low = () => 0;
    const high = () => 1;
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map((a) => reconnectDelay(a, RECONNECT_BACKOFF, high))).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    expect([0, 1, 2, 6, 1000].map((a) => reconnectDelay(a, RECONNECT_BACKOFF, low))).toEqual([50, 100, 200, 2500, 2500]);
  });

  it('spreads readers that retry at the same attempt', () => {
    const random = seededRandom(7);
    const delays = Array.from({ length: 50 }, () => reconnectDelay(3, RECONNECT_BACKOFF, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(400);
    expect(Math.max(...delays)).toBeLessThanOrEqual(800);
    expect(new Set(delays).size).toBeGreaterThan(20);
  });

  it('takes another policy', () => {
    expect(reconnectDelay(3, { initialMs: 10, maxMs: 40 }, () => 1)).toBe(40);
  });
});
