import { describe, expect, it } from 'vitest';
import { parseListing } from '../../../../src/firewall/nft/listing.js';
import { chainsFor, elementTimeout, renderElements, renderReplace, renderRoutes, renderTable, rulesFor, type NftLayout } from '../../../../src/firewall/nft/render.js';

const layout: NftLayout = {
  bridge: 'br0',
  ports: [{ protocol: 'tcp', port: 80 }, { protocol: 'tcp', port: 443 }, { protocol: 'udp', port: 443 }],
  hostPorts: [{ protocol: 'tcp', port: 8080 }],
  4: { subnets: ['192.0.2.0/24'], dns: [{ address: '192.0.2.1', port: 53 }] },
  6: { subnets: ['2001:db8:6::/64'], dns: [{ address: '2001:db8:6::1', port: 53 }] },
};

describe('the nftables table', () => {
  it('drops what the bridge sends but its own sources, established flows and the same network, then hands each client to its policy', () => {
    const egress = rulesFor(layout).filter((r) => r.chain === 'egress-br0').map((r) => r.text);
    expect(egress).toEqual([
      'ip saddr != { 192.0.2.0/24 } counter drop',
      'ip6 saddr != { 2001:db8:6::/64, fe80::/10 } counter drop',
      'ct state established,related accept',
      'oifname "br0" accept',
      'ip saddr vmap @clients4',
      'ip6 saddr vmap @clients6',
      'ip saddr vmap @ranges4',
      'ip6 saddr vmap @ranges6',
      'jump policy-default',
    ]);
  });

  it("gives each policy a chain: its set on its protocols and ports, then a counted drop", () => {
    const withPolicies = { ...layout, policies: [{ name: 'ci', ports: [{ protocol: 'tcp' as const, port: 22 }] }, { name: 'refused', ports: [] }] };
    const chains = (name: string) => rulesFor(withPolicies).filter((r) => r.chain === name).map((r) => r.text);
    expect(chains('policy-default')).toEqual([
      'ip daddr @allow4 meta l4proto . th dport { tcp . 80, tcp . 443, udp . 443 } accept',
      'ip6 daddr @allow6 meta l4proto . th dport { tcp . 80, tcp . 443, udp . 443 } accept',
      'counter drop',
    ]);
    expect(chains('policy-ci')).toEqual(['ip daddr @p-ci-4 meta l4proto . th dport { tcp . 22 } accept', 'ip6 daddr @p-ci-6 meta l4proto . th dport { tcp . 22 } accept', 'counter drop']);
    expect(chains('policy-refused')).toEqual(['counter drop']);
    expect(chainsFor(withPolicies)).toEqual(['forward', 'input', 'egress-br0', 'host-br0', 'policy-default', 'policy-ci', 'policy-refused']);
  });

  it('records what each policy is about to block before its verdict, and in audit mode accepts instead of dropping', () => {
    const recording: NftLayout = { ...layout, record: true, audit: true, policies: [{ name: 'ci', ports: [{ protocol: 'tcp', port: 22 }], audit: false }] };
    const chain = (name: string) => rulesFor(recording).filter((r) => r.chain === name);
    const record = [
      'meta l4proto { tcp, udp } update @blocked4 { ip saddr . ip daddr . meta l4proto . th dport }',
      'meta l4proto { tcp, udp } update @blocked6 { ip6 saddr . ip6 daddr . meta l4proto . th dport }',
    ];
    expect(chain('policy-default').map((r) => r.text).slice(-3)).toEqual([...record, 'counter accept']);
    expect(chain('policy-default').at(-1)!.comment).toMatch(/^on-his-name default-audit #/);
    expect(chain('policy-ci').map((r) => r.text).slice(-3)).toEqual([...record, 'counter drop']);
    expect(chain('policy-ci').at(-1)!.comment).toMatch(/^on-his-name policy-drop #/);
    const table = renderTable(recording);
    expect(table).toContain('add set inet on-his-name blocked4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags dynamic, timeout; timeout 600s; size 16384; counter; }');
    expect(table).toContain('add set inet on-his-name blocked6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service;');
    // Without the blocked view, no set and no record rule: the drop is the whole tail.
    expect(renderTable(layout)).not.toContain('blocked4');
    expect(rulesFor(layout).filter((r) => r.chain === 'policy-default').at(-1)!.text).toBe('counter drop');
  });

  it('routes each client to its policy in one transaction: containers by address, the file ranges as intervals', () => {
    expect(renderRoutes([{ client: '192.0.2.16/28', policy: 'ci' }, { client: '192.0.2.5', policy: 'web' }, { client: '2001:db8:6::5', policy: 'default' }]).split('\n')).toEqual([
      'flush map inet on-his-name clients4',
      'flush map inet on-his-name ranges4',
      'flush map inet on-his-name clients6',
      'flush map inet on-his-name ranges6',
      'add element inet on-his-name clients4 { 192.0.2.5 : jump policy-web }',
      'add element inet on-his-name ranges4 { 192.0.2.16/28 : jump policy-ci }',
      'add element inet on-his-name clients6 { 2001:db8:6::5 : jump policy-default }',
      '',
    ]);
  });

  it('lets the bridge reach the host only for neighbour discovery, DNS on the gateway and the host ports', () => {
    const host = rulesFor(layout).filter((r) => r.chain === 'host-br0').map((r) => r.text);
    expect(host).toEqual([
      'icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept',
      'ip saddr != { 192.0.2.0/24 } counter drop',
      'ip6 saddr != { 2001:db8:6::/64, fe80::/10 } counter drop',
      'ct state established,related accept',
      'ip daddr 192.0.2.1 meta l4proto { tcp, udp } th dport 53 accept',
      'ip6 daddr 2001:db8:6::1 meta l4proto { tcp, udp } th dport 53 accept',
      'meta l4proto tcp th dport 8080 accept',
      'counter drop',
    ]);
  });

  it('drops every IPv4 packet from a bridge whose IPv4 subnet is unknown', () => {
    expect(rulesFor({ ...layout, 4: { subnets: [], dns: [] } }).find((r) => r.chain === 'egress-br0')?.text).toBe('meta nfproto ipv4 counter drop');
  });

  it('tags each rule with its role and the hash of its text, so that an edited rule is seen', () => {
    const rules = rulesFor(layout);
    expect(rules.every((r) => /^on-his-name [a-z-]+ #[0-9a-f]{12}$/.test(r.comment))).toBe(true);
    const moved = rulesFor({ ...layout, 4: { ...layout[4], subnets: ['198.18.0.0/24'] } });
    expect(moved.find((r) => r.text.startsWith('ip saddr'))!.comment).not.toBe(rules.find((r) => r.text.startsWith('ip saddr'))!.comment);
  });

  it('rewrites every chain of ours in one transaction, sets untouched, and deletes the chains of a bridge and a policy left behind', () => {
    const script = renderTable({ ...layout, bridge: 'br1' }, { chains: ['forward', 'input', 'egress-br0', 'host-br0', 'policy-default', 'policy-old'], sets: ['allow4', 'p-old-4', 'clients4'] }).split('\n');
    expect(script[0]).toBe('add table inet on-his-name');
    expect(script.filter((l) => /^add (set|map)/.test(l))).toEqual([
      'add set inet on-his-name allow4 { type ipv4_addr; flags timeout; counter; }',
      'add set inet on-his-name allow6 { type ipv6_addr; flags timeout; counter; }',
      'add map inet on-his-name clients4 { type ipv4_addr : verdict; }',
      'add map inet on-his-name ranges4 { type ipv4_addr : verdict; flags interval; }',
      'add map inet on-his-name clients6 { type ipv6_addr : verdict; }',
      'add map inet on-his-name ranges6 { type ipv6_addr : verdict; flags interval; }',
    ]);
    expect(script.filter((l) => l.startsWith('flush chain')).map((l) => l.split(' ').at(-1))).toEqual(['forward', 'input', 'egress-br1', 'host-br1', 'policy-default', 'egress-br0', 'host-br0', 'policy-old']);
    expect(script.filter((l) => l.startsWith('delete'))).toEqual([
      'delete chain inet on-his-name egress-br0',
      'delete chain inet on-his-name host-br0',
      'delete chain inet on-his-name policy-old',
      'delete set inet on-his-name p-old-4',
    ]);
    expect(script.some((l) => /element|flush set|flush map/.test(l))).toBe(false);
  });

  it("deletes a previous run's routes to a policy gone from the file with its chain, in the same transaction, and no other route", () => {
    // Met at start: the kernel refuses to delete a chain a map element still jumps to, and the whole start would fail.
    const script = renderTable({ ...layout, policies: [{ name: 'refused', ports: [] }] }, {
      chains: ['forward', 'input', 'egress-br0', 'host-br0', 'policy-default', 'policy-web', 'policy-refused'],
      sets: ['allow4', 'p-web-4', 'p-web-6'],
      routes: [
        { map: 'ranges4', key: '192.0.2.11', target: 'policy-web' },
        { map: 'ranges4', key: '192.0.2.16/28', target: 'policy-web' },
        { map: 'clients4', key: '192.0.2.12', target: 'policy-web' },
        { map: 'clients4', key: '192.0.2.13', target: 'policy-refused' },
      ],
    }).split('\n');
    expect(script.filter((l) => l.startsWith('delete'))).toEqual([
      'delete element inet on-his-name ranges4 { 192.0.2.11, 192.0.2.16/28 }',
      'delete element inet on-his-name clients4 { 192.0.2.12 }',
      'delete chain inet on-his-name policy-web',
      'delete set inet on-his-name p-web-4',
      'delete set inet on-his-name p-web-6',
    ]);
  });

  it('opens with the seconds left and the name, closes even an element the kernel already let expire, and refreshes by replacing', () => {
    expect(renderElements(4, [{ address: '198.51.100.7', name: 'a.test.', expiresAt: 1_000 }], [{ address: '198.51.100.8' }], 400)).toBe(
      [
        'add element inet on-his-name allow4 { 198.51.100.8 timeout 1s }',
        'delete element inet on-his-name allow4 { 198.51.100.8 }',
        'add element inet on-his-name allow4 { 198.51.100.7 timeout 600s comment "a.test." }',
        '',
      ].join('\n'),
    );
    expect(renderElements(6, [], [], 0)).toBe('');
    expect(renderReplace(6, [{ address: '2001:db8::1', expiresAt: 70 }], 10)).toBe(
      'delete element inet on-his-name allow6 { 2001:db8::1 }\nadd element inet on-his-name allow6 { 2001:db8::1 timeout 60s }\n',
    );
    expect(renderElements(4, [{ address: '198.51.100.7', name: 'a"b.test.', expiresAt: 10 }], [], 0)).not.toContain('comment');
    expect([elementTimeout(undefined, 0), elementTimeout(5, 10), elementTimeout(10.2, 10)]).toEqual([86_400, 1, 1]);
  });
});

describe('nft -j list table, read', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'on-his-name', handle: 1 } },
      {
        set: {
          family: 'inet', name: 'allow4', table: 'on-his-name', type: 'ipv4_addr', flags: ['timeout'],
          elem: [
            { elem: { val: '198.51.100.7', timeout: 900, expires: 299, comment: 'a.test.', counter: { packets: 3, bytes: 180 } } },
            '198.51.100.9',
            { elem: { val: 'not-an-address' } },
          ],
        },
      },
      { chain: { family: 'inet', table: 'on-his-name', name: 'forward', handle: 1 } },
      { rule: { family: 'inet', table: 'on-his-name', chain: 'forward', handle: 4, comment: 'on-his-name bridge #1', expr: [] } },
      { rule: { family: 'inet', table: 'on-his-name', chain: 'forward', handle: 5, expr: [] } },
      { rule: { family: 'inet', table: 'someone-else', chain: 'forward', handle: 6, comment: 'x', expr: [] } },
      // As nft 1.0.6 lists them: an exact /32 of an interval map as a bare address, a wider one as a prefix.
      {
        map: {
          family: 'inet', name: 'ranges4', table: 'on-his-name', type: 'ipv4_addr', map: 'verdict', flags: ['interval'],
          elem: [
            ['192.0.2.11', { jump: { target: 'policy-web' } }],
            [{ prefix: { addr: '192.0.2.16', len: 28 } }, { jump: { target: 'policy-ci' } }],
            [{ range: ['192.0.2.40', '192.0.2.50'] }, { jump: { target: 'policy-ci' } }],
            ['192.0.2.60', { accept: null }],
          ],
        },
      },
      { map: { family: 'inet', name: 'clients4', table: 'on-his-name', type: 'ipv4_addr', map: 'verdict' } },
    ],
  });

  it('gives each chain its rule comments in order, and each set its elements', () => {
    const listing = parseListing(json);
    expect(listing.chains).toEqual(new Map([['forward', ['on-his-name bridge #1', '']]]));
    expect(listing.sets.get('allow4')).toEqual({
      type: 'ipv4_addr',
      flags: ['timeout'],
      elements: [{ address: '198.51.100.7', expires: 299, comment: 'a.test.', packets: 3, bytes: 180 }, { address: '198.51.100.9' }],
    });
  });

  it('gives each verdict map its clients, keyed as nft takes them back, and the chain each jumps to', () => {
    expect(parseListing(json).maps).toEqual(
      new Map([
        [
          'ranges4',
          [
            { key: '192.0.2.11', target: 'policy-web' },
            { key: '192.0.2.16/28', target: 'policy-ci' },
            { key: '192.0.2.40-192.0.2.50', target: 'policy-ci' },
          ],
        ],
        ['clients4', []],
      ]),
    );
  });

  it('reads nothing from what is not nft JSON', () => {
    expect(parseListing('not json')).toEqual({ chains: new Map(), sets: new Map(), maps: new Map() });
    expect(parseListing('{"nftables": 3}')).toEqual({ chains: new Map(), sets: new Map(), maps: new Map() });
  });
});
