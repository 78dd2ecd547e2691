import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressRanges, canonicalRange, parseAddress, parseIPv4, parseIPv6, parseRange } from '../../../src/util/address.js';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => {
  const full = g.map((x) => x.toString(16)).join(':');
  // Half the time, the shortest form (Node writes it), so that "::" is exercised.
  return g[0]! % 2 ? full : new URL(`http://[${full}]/`).hostname.slice(1, -1);
});

describe('parsing addresses', () => {
  it('reads dotted quads and refuses what is not one', () => {
    expect(parseIPv4('192.0.2.10')).toBe(0xc000020a);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['192.0.2', '192.0.2.1.5', '192.0.2.256', '192.0.02.1', '', '1..2.3', 'a.b.c.d']) expect(parseIPv4(bad)).toBeUndefined();
  });

  it('reads IPv6 in every form RFC 4291 allows, and refuses the rest', () => {
    expect(parseIPv6('::')).toEqual([0, 0, 0, 0]);
    expect(parseIPv6('::1')).toEqual([0, 0, 0, 1]);
    expect(parseIPv6('2001:db8::10')).toEqual([0x20010db8, 0, 0, 0x10]);
    expect(parseIPv6('fe80::')).toEqual([0xfe800000, 0, 0, 0]);
    expect(parseIPv6('::ffff:192.0.2.10')).toEqual([0, 0, 0xffff, 0xc000020a]);
    for (const bad of [':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', '12345::', '::192.0.2', '1:2:3:4:5:6:7::8:9']) expect(parseIPv6(bad), bad).toBeUndefined();
  });

  it('takes an IPv4-mapped IPv6 address for the IPv4 address inside it', () => {
    expect(parseAddress('::ffff:a9fe:a9fe')).toEqual({ family: 4, value: 0xa9fea9fe });
    expect(parseAddress('::ffff:169.254.169.254')).toEqual({ family: 4, value: 0xa9fea9fe });
  });

  it('agrees with node on which strings are addresses', () => {
    fc.assert(
      fc.property(fc.oneof(ipv4, ipv6, fc.string({ maxLength: 12 })), (text) => {
        expect(parseAddress(text) !== undefined, text).toBe(isIP(text) !== 0);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('ranges', () => {
  it('hold exactly what BlockList says they hold, in both families', () => {
    const check = (family: 4 | 6) =>
      fc.property(family === 4 ? ipv4 : ipv6, fc.nat(family === 4 ? 32 : 128), family === 4 ? ipv4 : ipv6, (base, bits, probe) => {
        const list = new BlockList();
        list.addSubnet(base, bits, family === 4 ? 'ipv4' : 'ipv6');
        const range = parseRange(`${base}/${bits}`)!;
        expect(range.has(parseAddress(probe)!), `${probe} in ${base}/${bits}`).toBe(list.check(probe, family === 4 ? 'ipv4' : 'ipv6'));
        // The range's own first address is in it.
        expect(range.has(parseAddress(base)!)).toBe(true);
      });
    fc.assert(check(4), { numRuns: 3_000 });
    fc.assert(check(6), { numRuns: 3_000 });
  });

  it('treats a bare address as its own /32 or /128, and refuses bad prefixes', () => {
    expect(parseRange('192.0.2.10')).toMatchObject({ family: 4, bits: 32 });
    expect(parseRange('2001:db8::1')).toMatchObject({ family: 6, bits: 128 });
    for (const bad of ['192.0.2.0/33', '2001:db8::/129', '192.0.2.0/', '192.0.2.0/8/8', 'x/8', '10.0.0.0/-1']) expect(parseRange(bad), bad).toBeUndefined();
  });

  it('finds the narrowest range holding an address, whatever the order given', () => {
    const ranges = new AddressRanges([
      { cidr: '172.18.0.0/16', value: 'wide' },
      { cidr: '172.18.0.17', value: 'one' },
      { cidr: '172.18.0.16/28', value: 'narrow' },
      { cidr: 'fd00:18::/64', value: 'six' },
    ]);
    expect(ranges.find('172.18.0.17')?.value).toBe('one');
    expect(ranges.find('172.18.0.18')?.value).toBe('narrow');
    expect(ranges.find('172.18.9.9')?.value).toBe('wide');
    expect(ranges.find('::ffff:172.18.0.17')?.value).toBe('one');
    expect(ranges.find('fd00:18::5')?.value).toBe('six');
    expect(ranges.find('10.0.0.1')).toBeUndefined();
    expect(ranges.find('not an address')).toBeUndefined();
  });
});

describe('canonicalRange', () => {
  it('writes a range as iptables and nft print it back: network address, shortest IPv6, a bare address bare', () => {
    expect(canonicalRange('172.18.0.20/28')).toBe('172.18.0.16/28');
    expect(canonicalRange('172.18.0.5')).toBe('172.18.0.5');
    expect(canonicalRange('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(canonicalRange('FD00:0018:0000:0000:0000:0000:0000:0005/64')).toBe('fd00:18::/64');
    expect(canonicalRange('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalRange('2001:0:0:1::1')).toBe('2001:0:0:1::1');
    expect(canonicalRange('::')).toBe('::');
    expect(canonicalRange('nope/8')).toBeUndefined();
  });

  it('agrees with the WHATWG URL parser on IPv6 text (RFC 5952)', () => {
    fc.assert(
      fc.property(ipv6, (address) => {
        expect(canonicalRange(address)).toBe(new URL(`http://[${address}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 2_000 },
    );
  });
});
