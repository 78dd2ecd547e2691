import { describe, expect, it } from 'vitest';
import { acceptRule, dropRule, establishedRule, parseOwnedRule, sameNetworkRule, splitRule } from '../../../src/firewall/rules.js';

describe('rule specs', () => {
  it('renders our four kinds of rule, each tagged with a comment', () => {
    expect(establishedRule('br0')).toBe(
      '-i br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "on-his-name established" -j RETURN',
    );
    expect(sameNetworkRule('br0')).toBe('-i br0 -o br0 -m comment --comment "on-his-name same-network" -j RETURN');
    expect(acceptRule('br0', '198.51.100.7', 443, 'example.com.')).toBe(
      '-d 198.51.100.7/32 -i br0 -p tcp -m tcp --dport 443 -m comment --comment "on-his-name example.com." -j ACCEPT',
    );
    expect(dropRule('br0')).toBe('-i br0 -m comment --comment "on-his-name default-drop" -j DROP');
  });

  it('leaves out of the comment a name that could not be quoted safely', () => {
    expect(acceptRule('br0', '198.51.100.7', 80, 'a"b.example.com.')).toContain('--comment "on-his-name" -j ACCEPT');
  });
});

describe('parseOwnedRule', () => {
  it('recognises each of our rules as iptables -S lists them', () => {
    for (const spec of [establishedRule('br0'), sameNetworkRule('br0'), acceptRule('br0', '198.51.100.7', 80, 'x.test.'), dropRule('br0')]) {
      expect(parseOwnedRule(`-A DOCKER-USER ${spec}`)?.spec).toBe(spec);
    }
    expect(parseOwnedRule(`-A DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'x.test.')}`)).toMatchObject({
      role: 'accept',
      bridge: 'br0',
      address: '198.51.100.7',
      port: 80,
      name: 'x.test.',
    });
  });

  it('renders and reads back an IPv6 accept rule as ip6tables -S lists it (/128)', () => {
    expect(acceptRule('br0', '2001:db8::7', 443, 'example.com.')).toBe(
      '-d 2001:db8::7/128 -i br0 -p tcp -m tcp --dport 443 -m comment --comment "on-his-name example.com." -j ACCEPT',
    );
    const listed = '-A DOCKER-USER -d 2001:db8::7/128 -i br0 -p tcp -m tcp --dport 443 -m comment --comment "on-his-name example.com." -j ACCEPT';
    expect(parseOwnedRule(listed)).toMatchObject({ role: 'accept', bridge: 'br0', address: '2001:db8::7', port: 443, name: 'example.com.' });
  });

  it('reads nf_tables listings, where options come in another order', () => {
    const line = '-A DOCKER-USER -i br-1a2b3c4d5e6f -m comment --comment "on-his-name default-drop" -j DROP';
    expect(parseOwnedRule(line)).toMatchObject({ role: 'drop', bridge: 'br-1a2b3c4d5e6f' });
  });

  it.each([
    '-N DOCKER-USER',
    '-A DOCKER-USER -j RETURN',
    '-A DOCKER-USER -i br0 -j DROP',
    '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT',
    '-A DOCKER-USER -i br0 -m comment --comment "on-his-name-not-really" -j DROP',
    '-A FORWARD -i br0 -m comment --comment "on-his-name default-drop" -j DROP',
  ])('does not claim a rule that is not ours: %s', (line) => {
    expect(parseOwnedRule(line)).toBeUndefined();
  });

  it('splits quoted words as iptables prints them', () => {
    expect(splitRule('-A X -m comment --comment "a \\"b\\" c" -j DROP')).toEqual(['-A', 'X', '-m', 'comment', '--comment', 'a "b" c', '-j', 'DROP']);
  });
});
