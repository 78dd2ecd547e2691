import { describe, expect, it } from 'vitest';
import { MAX_COMMENT_BYTES, acceptComment, acceptRule, dropRule, establishedRule, parseAcceptComment, parseOwnedRule, sameNetworkRule, setAcceptRule, setAcceptRules, splitRule } from '../../../src/firewall/rules.js';

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

  it('recognises the ipset backend\'s one accept rule, as iptables-nft lists it', () => {
    const listed =
      '-A DOCKER-USER -i br0 -p tcp -m multiport --dports 80,443 -m set --match-set on-his-name-v4 dst -m comment --comment "on-his-name allowed-set" -j ACCEPT';
    expect(`-A DOCKER-USER ${setAcceptRule('br0', 'tcp', [80, 443], 'on-his-name-v4')}`).toBe(listed);
    expect(parseOwnedRule(listed)).toEqual({
      role: 'set-accept',
      bridge: 'br0',
      set: 'on-his-name-v4',
      ports: '80,443',
      spec: listed.slice('-A DOCKER-USER '.length),
    });
  });

  it('splits quoted words as iptables prints them', () => {
    expect(splitRule('-A X -m comment --comment "a \\"b\\" c" -j DROP')).toEqual(['-A', 'X', '-m', 'comment', '--comment', 'a "b" c', '-j', 'DROP']);
  });
});

describe('accept comments with an expiry', () => {
  it('writes the expiry before the name and reads both back', () => {
    const spec = acceptRule('br0', '198.51.100.7', 443, 'example.com.', 1764000000);
    expect(spec).toContain('--comment "on-his-name exp=1764000000 example.com." -j ACCEPT');
    expect(parseOwnedRule(`-A DOCKER-USER ${spec}`)).toMatchObject({ role: 'accept', name: 'example.com.', expiresAt: 1764000000 });
    expect(parseAcceptComment('exp=1764000000')).toEqual({ expiresAt: 1764000000 });
  });

  it('reads the comment format from before expiry: a name, or nothing', () => {
    const named = parseOwnedRule(`-A DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'old.test.')}`);
    expect(named).toMatchObject({ name: 'old.test.' });
    expect(named?.expiresAt).toBeUndefined();
    expect(parseOwnedRule('-A DOCKER-USER -d 198.51.100.7/32 -i br0 -p tcp -m tcp --dport 80 -m comment --comment on-his-name -j ACCEPT')).toEqual(
      expect.objectContaining({ role: 'accept', address: '198.51.100.7' }),
    );
  });

  it('stays within the kernel limit of 255 bytes, leaving out a name that would not fit but never the expiry', () => {
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.`; // 253 characters + dot
    expect(acceptComment(longest, 9_999_999_999)).toBe('on-his-name exp=9999999999');
    const fits = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(35)}.`;
    expect(acceptComment(fits, 9_999_999_999)).toHaveLength(MAX_COMMENT_BYTES);
    expect(acceptComment(fits, 9_999_999_999).endsWith(fits)).toBe(true);
  });
});

describe('UDP ports (HTTP/3, NTP)', () => {
  it('renders and reads back a UDP accept rule, and one set rule per protocol', () => {
    const spec = acceptRule('br0', '198.51.100.7', { protocol: 'udp', port: 443 }, 'h3.test.', 1764000000);
    expect(spec).toBe('-d 198.51.100.7/32 -i br0 -p udp -m udp --dport 443 -m comment --comment "on-his-name exp=1764000000 h3.test." -j ACCEPT');
    expect(parseOwnedRule(`-A DOCKER-USER ${spec}`)).toMatchObject({ role: 'accept', address: '198.51.100.7', port: 443, protocol: 'udp' });
    expect(setAcceptRules('br0', [{ protocol: 'udp', port: 443 }, { protocol: 'tcp', port: 80 }, { protocol: 'tcp', port: 443 }], 'on-his-name-v4')).toEqual([
      '-i br0 -p tcp -m multiport --dports 80,443 -m set --match-set on-his-name-v4 dst -m comment --comment "on-his-name allowed-set" -j ACCEPT',
      '-i br0 -p udp -m multiport --dports 443 -m set --match-set on-his-name-v4 dst -m comment --comment "on-his-name allowed-set" -j ACCEPT',
    ]);
  });
});
