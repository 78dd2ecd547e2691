import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXPIRY_DEFAULTS, ExpiryHeap, MAX_TTL, expiryFor, needsRefresh, refreshStep } from '../../../src/firewall/expiry.js';

describe('expiry arithmetic', () => {
  const policy = { minTtl: 300, ttlGrace: 600 };

  it('gives an address its TTL, never less than the floor, plus the grace, from the next whole second', () => {
    expect(expiryFor(1_000, 3600, policy)).toBe(1_000 + 3600 + 600);
    expect(expiryFor(1_000, 20, policy)).toBe(1_000 + 300 + 600);
    expect(expiryFor(1_000.2, 0, { minTtl: 1, ttlGrace: 0 })).toBe(1_002);
  });

  it('counts a TTL of years as one day, as resolvers cap it', () => {
    expect(expiryFor(1_000, 2 ** 31 - 1, policy)).toBe(1_000 + MAX_TTL + 600);
  });

  it('rewrites a stored expiry only once it lags by half the grace', () => {
    expect(refreshStep(policy)).toBe(300);
    expect(needsRefresh(10_000, 10_299, policy)).toBe(false);
    expect(needsRefresh(10_000, 10_300, policy)).toBe(true);
    expect(needsRefresh(undefined, 10_000, policy)).toBe(true);
    expect(refreshStep({ minTtl: 1, ttlGrace: 0 })).toBe(1);
  });

  it('keeps every address open at least TTL + grace/2 after its latest answer', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 900 }), fc.integer({ min: 0, max: MAX_TTL })), { minLength: 1, maxLength: 50 }), (answers) => {
        let now = 1_700_000_000;
        let stored: number | undefined;
        for (const [gap, ttl] of answers) {
          now += gap;
          const next = expiryFor(now, ttl, EXPIRY_DEFAULTS);
          if (needsRefresh(stored, next, EXPIRY_DEFAULTS)) stored = next;
          expect(stored! - now).toBeGreaterThanOrEqual(Math.max(ttl, EXPIRY_DEFAULTS.minTtl) + EXPIRY_DEFAULTS.ttlGrace / 2);
        }
      }),
    );
  });
});

describe('ExpiryHeap', () => {
  it('gives the soonest deadline first, and the oldest of equal ones', () => {
    const heap = new ExpiryHeap();
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (deadlines) => {
        heap.clear();
        deadlines.forEach((d, i) => heap.push(d, `a${i}`));
        const out: Array<[number, number]> = [];
        for (let item = heap.pop(); item; item = heap.pop()) out.push([item.expiresAt, Number(item.address.slice(1))]);
        const expected = deadlines.map((d, i) => [d, i] as [number, number]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        expect(out).toEqual(expected);
      }),
    );
  });
});
