import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { overlaps, range } from '../../../src/util/cidr.js';

/** An IPv4 range as the numbers it covers, the plain arithmetic overlaps() must agree with. */
function interval(address: number, bits: number): [number, number] {
  const size = 2 ** (32 - bits);
  const first = Math.floor(address / size) * size;
  return [first, first + size - 1];
}
const dotted = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join('.');

describe('range', () => {
  it('reads a range as its first address as written, its prefix and its family', () => {
    expect(range('172.18.0.16/28')).toMatchObject({ address: '172.18.0.16', bits: 28, family: 'ipv4' });
    expect(range('fd00:18::/64')).toMatchObject({ address: 'fd00:18::', bits: 64, family: 'ipv6' });
  });

  it('reads a bare address as its own /32 or /128', () => {
    expect(range('172.18.0.5')).toMatchObject({ bits: 32, family: 'ipv4' });
    expect(range('fd00::5')).toMatchObject({ bits: 128, family: 'ipv6' });
    expect(range('172.18.0.5')!.list.check('172.18.0.5', 'ipv4')).toBe(true);
    expect(range('172.18.0.5')!.list.check('172.18.0.6', 'ipv4')).toBe(false);
  });

  it('covers the whole range even when the address is written with host bits set', () => {
    const r = range('172.18.0.20/28')!;
    expect(r.list.check('172.18.0.16', 'ipv4')).toBe(true);
    expect(r.list.check('172.18.0.31', 'ipv4')).toBe(true);
    expect(r.list.check('172.18.0.32', 'ipv4')).toBe(false);
  });

  it.each(['', 'example.com/8', '/24', 'not an address'])('is undefined for %j', (text) => {
    expect(range(text)).toBeUndefined();
  });
});

describe('overlaps', () => {
  it.each([
    ['172.18.0.0/16', '172.18.0.16/28', true],
    ['172.18.0.16/28', '172.18.0.0/16', true],
    ['172.18.0.16/28', '172.18.0.32/28', false],
    ['172.18.0.16/28', '172.18.0.31', true],
    ['172.18.0.16/28', '172.18.0.32', false],
    ['0.0.0.0/0', '198.51.100.7/32', true],
    ['172.18.0.20/28', '172.18.0.17', true], // host bits set on one side
    ['fd00:18::/64', 'fd00:18::7', true],
    ['fd00:18::/64', 'fd00:19::/64', false],
    ['::/0', 'fd00::1', true],
  ])('%s and %s: %s', (a, b, expected) => {
    expect(overlaps(a, b)).toBe(expected);
  });

  it('never says an IPv4 range and an IPv6 range overlap, not even ::/0 or the IPv4-mapped range', () => {
    expect(overlaps('0.0.0.0/0', '::/0')).toBe(false);
    expect(overlaps('172.18.0.0/16', '::ffff:172.18.0.0/112')).toBe(false);
  });

  it('is false for anything unreadable rather than throwing', () => {
    expect(overlaps('garbage', '172.18.0.0/16')).toBe(false);
    expect(overlaps('172.18.0.0/16', '')).toBe(false);
  });

  it('agrees with interval arithmetic for any two IPv4 ranges', () => {
    const cidr = fc.record({ address: fc.nat({ max: 2 ** 32 - 1 }), bits: fc.integer({ min: 0, max: 32 }) });
    fc.assert(
      fc.property(cidr, cidr, (a, b) => {
        const [a0, a1] = interval(a.address, a.bits);
        const [b0, b1] = interval(b.address, b.bits);
        const expected = a0 <= b1 && b0 <= a1;
        expect(overlaps(`${dotted(a.address)}/${a.bits}`, `${dotted(b.address)}/${b.bits}`)).toBe(expected);
      }),
      { numRuns: 2_000 },
    );
  });
});
