import { describe, expect, it } from 'vitest';
import { planAllow, planApply, planRemoval, planSetSync, planSync, ownedRules } from '../../../src/firewall/planner.js';
import { acceptRule, dropRule, establishedRule, sameNetworkRule, setAcceptRule } from '../../../src/firewall/rules.js';

const layout = { bridge: 'br0', ports: [80, 443] };
const A = (spec: string) => `-A DOCKER-USER ${spec}`;
const dockerDefault = ['-N DOCKER-USER', '-A DOCKER-USER -j RETURN'];
const foreign = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';
const ourBlock = (...accepts: string[]) => [
  A(establishedRule('br0')),
  A(sameNetworkRule('br0')),
  ...accepts.map(A),
  A(dropRule('br0')),
];

describe('planSync', () => {
  it('installs the base block at the top of an empty Docker chain, ahead of its RETURN', () => {
    const plan = planSync(dockerDefault, layout);
    expect(plan.script).toBe(
      [
        '*filter',
        `-I DOCKER-USER 1 ${establishedRule('br0')}`,
        `-I DOCKER-USER 2 ${sameNetworkRule('br0')}`,
        `-I DOCKER-USER 3 ${dropRule('br0')}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(plan).toMatchObject({ adopted: [], insertAt: 3, rebuilt: true });
  });

  it('adopts a block left by a previous run without changing anything', () => {
    const listing = ['-N DOCKER-USER', foreign, ...ourBlock(acceptRule('br0', '198.51.100.7', 80, 'a.test.'), acceptRule('br0', '198.51.100.7', 443, 'a.test.')), '-A DOCKER-USER -j RETURN'];
    const plan = planSync(listing, layout);
    expect(plan.script).toBeUndefined();
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.' }]);
    expect(plan.insertAt).toBe(4); // after the foreign rule and our two base rules
    expect(plan.rebuilt).toBe(false);
  });

  it('opens newly configured ports and closes dropped ones for adopted addresses', () => {
    const listing = ['-N DOCKER-USER', ...ourBlock(acceptRule('br0', '198.51.100.7', 80), acceptRule('br0', '198.51.100.7', 8443))];
    const plan = planSync(listing, layout);
    expect(plan.script).toBe(
      ['*filter', `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 8443)}`, `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 443)}`, 'COMMIT', ''].join('\n'),
    );
  });

  it('rewrites a block that a RETURN now precedes, keeping its addresses and every foreign rule', () => {
    const listing = ['-N DOCKER-USER', '-A DOCKER-USER -j RETURN', ...ourBlock(acceptRule('br0', '198.51.100.7', 80, 'a.test.'))];
    const plan = planSync(listing, layout);
    expect(plan.rebuilt).toBe(true);
    const lines = plan.script!.split('\n');
    expect(lines.filter((l) => l.startsWith('-D'))).toHaveLength(4);
    expect(lines.filter((l) => l.startsWith('-I'))).toEqual([
      `-I DOCKER-USER 1 ${establishedRule('br0')}`,
      `-I DOCKER-USER 2 ${sameNetworkRule('br0')}`,
      `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.')}`,
      `-I DOCKER-USER 4 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.')}`,
      `-I DOCKER-USER 5 ${dropRule('br0')}`,
    ]);
    expect(plan.script).not.toContain('someone-else');
    expect(plan.script).not.toMatch(/-D DOCKER-USER -j RETURN/);
  });

  it.each([
    ['the DROP is missing', [A(establishedRule('br0')), A(sameNetworkRule('br0'))]],
    ['an accept sits below the DROP', [A(establishedRule('br0')), A(sameNetworkRule('br0')), A(dropRule('br0')), A(acceptRule('br0', '198.51.100.7', 80))]],
    ['a rule is there twice', [...ourBlock(acceptRule('br0', '198.51.100.7', 80), acceptRule('br0', '198.51.100.7', 80))]],
    ['the base rules are swapped', [A(sameNetworkRule('br0')), A(establishedRule('br0')), A(dropRule('br0'))]],
  ])('rebuilds when %s', (_, listing) => {
    const plan = planSync(['-N DOCKER-USER', ...listing], layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.script!.match(/^-I DOCKER-USER \d+ .*-j DROP$/gm)).toHaveLength(1);
  });

  it("leaves another bridge's rules alone", () => {
    const other = [A(establishedRule('br1')), A(sameNetworkRule('br1')), A(dropRule('br1'))];
    const plan = planSync(['-N DOCKER-USER', ...other], layout);
    expect(plan.script).not.toContain('br1');
  });
});

describe('planAllow', () => {
  it('renders one insert per address and port, ahead of the DROP, in one transaction', () => {
    expect(planAllow([{ address: '198.51.100.7', name: 'a.test.' }, { address: '198.51.100.8' }], layout, 3)).toBe(
      [
        '*filter',
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.')}`,
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.')}`,
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.8', 80)}`,
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.8', 443)}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describe('planRemoval', () => {
  it('deletes exactly our rules, of every bridge', () => {
    const listing = ['-N DOCKER-USER', foreign, ...ourBlock(acceptRule('br0', '198.51.100.7', 80)), A(dropRule('br1')), '-A DOCKER-USER -j RETURN'];
    const script = planRemoval(ownedRules(listing));
    expect(script?.split('\n').filter((l) => l.startsWith('-D'))).toHaveLength(5);
    expect(script).not.toContain('someone-else');
    expect(planRemoval(ownedRules(dockerDefault))).toBeUndefined();
  });
});

describe('expiry in the kernel', () => {
  const at = (exp: number) => acceptRule('br0', '198.51.100.7', 80, 'a.test.', exp);

  it('adopts the expiry each address carries, and addresses from before expiry without one', () => {
    const listing = [
      '-N DOCKER-USER',
      ...ourBlock(
        acceptRule('br0', '198.51.100.7', 80, 'a.test.', 1_764_000_000),
        acceptRule('br0', '198.51.100.7', 443, 'a.test.', 1_764_000_000),
        acceptRule('br0', '198.51.100.8', 80, 'old.test.'),
        acceptRule('br0', '198.51.100.8', 443, 'old.test.'),
      ),
    ];
    const plan = planSync(listing, layout);
    expect(plan.script).toBeUndefined();
    expect(plan.adopted).toEqual([
      { address: '198.51.100.7', name: 'a.test.', expiresAt: 1_764_000_000 },
      { address: '198.51.100.8', name: 'old.test.' },
    ]);
  });

  it('rebuilds when the rules of one address disagree on their expiry, keeping the latest', () => {
    const plan = planSync(['-N DOCKER-USER', ...ourBlock(at(100), acceptRule('br0', '198.51.100.7', 443, 'a.test.', 200))], layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 200 }]);
    expect(plan.script!.split('\n').filter((l) => l.startsWith('-I') && l.includes('ACCEPT'))).toEqual([
      `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 200)}`,
      `-I DOCKER-USER 4 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 200)}`,
    ]);
  });
});

describe('planApply', () => {
  const installed = new Map([['198.51.100.7', { address: '198.51.100.7', name: 'a.test.', expiresAt: 100 }]]);

  it('refreshes by deleting the rules as installed and inserting the new ones, in one transaction', () => {
    const script = planApply([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 500 }], [], installed, layout, 3);
    expect(script).toBe(
      [
        '*filter',
        `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 100)}`,
        `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 100)}`,
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 500)}`,
        `-I DOCKER-USER 3 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 500)}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('removes what is installed, skips what is not, and has nothing to do for an empty batch', () => {
    const script = planApply([], [{ address: '198.51.100.7' }, { address: '198.51.100.9' }], installed, layout, 3);
    expect(script?.split('\n').filter((l) => l.startsWith('-'))).toEqual([
      `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 100)}`,
      `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 100)}`,
    ]);
    expect(planApply([], [{ address: '198.51.100.9' }], installed, layout, 3)).toBeUndefined();
  });
});

describe('planSetSync', () => {
  const SET = 'on-his-name-v4';
  const setBlock = (ports = [80, 443]) => [A(establishedRule('br0')), A(sameNetworkRule('br0')), A(setAcceptRule('br0', ports, SET)), A(dropRule('br0'))];
  const installs = (ports = [80, 443]) =>
    [establishedRule('br0'), sameNetworkRule('br0'), setAcceptRule('br0', ports, SET), dropRule('br0')].map((spec, i) => `-I DOCKER-USER ${i + 1} ${spec}`);

  it('installs established, same-network, one set rule and the DROP at the top', () => {
    expect(planSetSync(dockerDefault, layout, SET)).toEqual({
      script: ['*filter', ...installs(), 'COMMIT', ''].join('\n'),
      adopted: [],
      rebuilt: true,
    });
  });

  it('keeps a block that is already in order', () => {
    expect(planSetSync(['-N DOCKER-USER', ...setBlock(), foreign, '-A DOCKER-USER -j RETURN'], layout, SET)).toEqual({
      script: undefined,
      adopted: [],
      rebuilt: false,
    });
  });

  it.each([
    ['other ports', ['-N DOCKER-USER', ...setBlock([80]), '-A DOCKER-USER -j RETURN']],
    ['behind a RETURN', ['-N DOCKER-USER', '-A DOCKER-USER -j RETURN', ...setBlock()]],
    ['the set rule missing', ['-N DOCKER-USER', ...setBlock().filter((l) => !l.includes('match-set')), '-A DOCKER-USER -j RETURN']],
    ['the set rule twice', ['-N DOCKER-USER', ...setBlock().slice(0, 3), A(setAcceptRule('br0', [80, 443], SET)), A(dropRule('br0'))]],
  ])('rewrites the block with %s, keeping foreign rules', (_, listing) => {
    const plan = planSetSync([...listing, foreign], layout, SET);
    const owned = listing.filter((l) => l.includes('on-his-name'));
    expect(plan.rebuilt).toBe(true);
    expect(plan.script).toBe(['*filter', ...owned.map((l) => l.replace('-A DOCKER-USER', '-D DOCKER-USER')), ...installs(), 'COMMIT', ''].join('\n'));
  });

  it("replaces the iptables backend's per-address rules, returning their addresses to move into the set", () => {
    const listing = ['-N DOCKER-USER', ...ourBlock(acceptRule('br0', '198.51.100.7', 443, 'x.test.'), acceptRule('br0', '198.51.100.7', 80, 'x.test.')), '-A DOCKER-USER -j RETURN'];
    const plan = planSetSync(listing, layout, SET);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'x.test.' }]);
    expect(plan.script?.split('\n').filter((l) => l.startsWith('-D'))).toHaveLength(5);
    expect(plan.script).toContain(`-I DOCKER-USER 3 ${setAcceptRule('br0', [80, 443], SET)}`);
  });

  it('and the iptables backend rewrites a set block back into per-address rules', () => {
    const plan = planSync(['-N DOCKER-USER', ...setBlock(), '-A DOCKER-USER -j RETURN'], layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.script).toContain(`-D DOCKER-USER ${setAcceptRule('br0', [80, 443], SET)}`);
  });
});
