import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/util/errors.js';
import { AddressGuard, parseCidr } from '../../../src/policy/special-addresses.js';

describe('AddressGuard', () => {
  const guard = new AddressGuard();

  it.each([
    ['127.0.0.1', /loopback/],
    ['169.254.169.254', /cloud metadata/],
    ['10.1.2.3', /private/],
    ['172.17.0.1', /Docker networks/],
    ['192.168.1.1', /private/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['224.0.0.251', /multicast/],
    ['0.0.0.0', /unspecified/],
    ['255.255.255.255', /broadcast/],
  ])('refuses %s, saying why', (address, why) => {
    expect(guard.refusal(address)).toMatch(why);
  });

  it.each(['198.51.100.7', '203.0.113.10', '93.184.215.14', '172.32.0.1', '11.0.0.1', '2001:db8::1', '2606:2800:220:1::1', '::ffff:198.51.100.7'])('lets %s through', (address) => {
    expect(guard.refusal(address)).toBeUndefined();
  });

  it('opens a special range on purpose with --allow-cidr, and only that range', () => {
    const opened = new AddressGuard(['10.20.0.0/16']);
    expect(opened.refusal('10.20.30.40')).toBeUndefined();
    expect(opened.refusal('10.21.0.1')).toMatch(/private/);
  });

  it.each([
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fe80::1', /link-local/],
    ['fd00:ec2::254', /unique local/],
    ['ff02::fb', /multicast/],
    ['::ffff:127.0.0.1', /loopback/],
    ['::ffff:a9fe:a9fe', /cloud metadata/],
    ['64:ff9b::a9fe:a9fe', /NAT64/],
  ])('refuses the IPv6 address %s, saying why', (address, why) => {
    expect(guard.refusal(address)).toMatch(why);
  });

  it('opens an IPv6 range on purpose with --allow-cidr, and refuses the IPv6 subnet of the network', () => {
    const opened = new AddressGuard(['fd00:1::/64'], ['2001:db8:5::/64']);
    expect(opened.refusal('fd00:1::7')).toBeUndefined();
    expect(opened.refusal('fd00:2::7')).toMatch(/unique local/);
    expect(opened.refusal('2001:db8:5::9')).toMatch(/Docker network's own subnet/);
    expect(opened.refusal('2001:db8:6::9')).toBeUndefined();
  });

  it("refuses the Docker networks' own subnets", () => {
    expect(new AddressGuard([], ['198.51.100.0/28']).refusal('198.51.100.3')).toMatch(/Docker network's own subnet/);
  });

  it.each(['10.0.0.0/33', '10.0.0/8', 'example.com/8', '10.0.0.0/x', '2001:db8::/129', '2001:db8:::/32'])('rejects the range %j with a clear error', (cidr) => {
    expect(() => parseCidr(cidr, '--allow-cidr')).toThrow(ConfigError);
    expect(() => parseCidr(cidr, '--allow-cidr')).toThrow(`--allow-cidr "${cidr}" is not an IPv4 or IPv6 range`);
  });
});

describe('the IPv4 fast path', () => {
  it('refuses exactly what node:net BlockList says the special ranges and --allow-cidr leave closed', () => {
    const guard = new AddressGuard(['10.1.0.0/16', '198.51.100.0/28'], ['172.18.0.0/16']);
    const special = new BlockList();
    for (const cidr of ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/4', '240.0.0.0/4']) {
      const [address, prefix] = cidr.split('/');
      special.addSubnet(address!, Number(prefix), 'ipv4');
    }
    const allowed = new BlockList();
    allowed.addSubnet('10.1.0.0', 16, 'ipv4');
    allowed.addSubnet('198.51.100.0', 28, 'ipv4');
    const octet = fc.oneof(fc.constantFrom(0, 10, 100, 127, 169, 172, 192, 198, 224, 255), fc.nat(255));
    fc.assert(
      fc.property(fc.tuple(octet, octet, octet, octet), (octets) => {
        const address = octets.join('.');
        const closed = !allowed.check(address, 'ipv4') && special.check(address, 'ipv4');
        expect(guard.refusal(address) !== undefined).toBe(closed);
      }),
      { numRuns: 2000, seed: 4 },
    );
  });

  it('agrees with BlockList for any --allow-cidr and network ranges, prefixes shorter than an octet included', () => {
    const specialCidrs = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/4', '240.0.0.0/4'];
    const octet = fc.oneof(fc.constantFrom(0, 10, 100, 127, 169, 172, 192, 198, 224, 255), fc.nat(255));
    const quad = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
    const cidr = fc.tuple(quad, fc.integer({ min: 0, max: 32 })).map(([address, prefix]) => `${address}/${prefix}`);
    const list = (cidrs: string[]) => {
      const blocks = new BlockList();
      for (const c of cidrs) {
        const [address, prefix] = c.split('/');
        blocks.addSubnet(address!, Number(prefix), 'ipv4');
      }
      return blocks;
    };
    fc.assert(
      fc.property(fc.array(cidr, { maxLength: 3 }), fc.array(cidr, { maxLength: 2 }), fc.array(quad, { minLength: 20, maxLength: 20 }), (allowCidrs, networks, addresses) => {
        const guard = new AddressGuard(allowCidrs, networks);
        const allowed = list(allowCidrs);
        const special = list([...networks, ...specialCidrs]);
        for (const address of addresses) {
          const closed = !allowed.check(address, 'ipv4') && special.check(address, 'ipv4');
          expect(guard.refusal(address) !== undefined, address).toBe(closed);
        }
      }),
      { numRuns: 300, seed: 6 },
    );
  });

  it('takes as IPv4 only what isIP does: text that is not a dotted quad is never judged as one', () => {
    const guard = new AddressGuard();
    const text = fc.stringMatching(/^[0-9.]{0,17}$/);
    fc.assert(
      fc.property(text, (address) => {
        if (isIP(address) !== 4) expect(guard.refusal(address)).toBeUndefined();
      }),
      { numRuns: 5000, seed: 5 },
    );
    for (const bad of ['010.0.0.1', '10.0.0', '10.0.0.1.', '.10.0.0.1', '10..0.1', '256.0.0.1', '1000.0.0.1']) expect(guard.refusal(bad)).toBeUndefined();
    expect(guard.refusal('10.0.0.1')).toMatch(/private/);
    expect(guard.refusal('0.0.0.0')).toMatch(/unspecified/);
  });
});
