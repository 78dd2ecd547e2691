import { describe, expect, it } from 'vitest';
import { COST, headRules, planApply, planPolicySync, planRemoval, planSetSync, planSync, ownedRules, tailRules } from '../../../src/firewall/planner.js';
import {
  AUDIT_MARK,
  CLIENTS_CHAIN,
  HOST_CHAIN,
  RECORD_CHAIN,
  auditedRule,
  parseOwnedRule,
  policyDropRule,
  recordChain,
  recordRule,
  routeRule,
  SOURCES_CHAIN,
  acceptRule,
  clientsRule,
  dropRule,
  establishedRule,
  hostChain,
  hostJumpRule,
  sameNetworkRule,
  setAcceptRule,
  sourceCheckRule,
  sourcesChain,
} from '../../../src/firewall/rules.js';
import { testLayout } from '../../support/layout.js';

const layout = testLayout();
const A = (spec: string) => `-A DOCKER-USER ${spec}`;
const foreign = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';
const head = (bridge = 'br0') => headRules(bridge);
const tail = (bridge = 'br0') => tailRules({ bridge });
const ourBlock = (...accepts: string[]) => [...head().map(A), ...accepts.map(A), ...tail().map(A)];
/** Our chains and INPUT jump as the planner wants them for `layout`. */
const support = [
  `-N ${CLIENTS_CHAIN}`,
  `-N ${HOST_CHAIN}`,
  `-N ${RECORD_CHAIN}`,
  `-N ${SOURCES_CHAIN}`,
  `-A INPUT ${hostJumpRule('br0')}`,
  ...sourcesChain('br0', layout.subnets).map((spec) => `-A ${SOURCES_CHAIN} ${spec}`),
  ...hostChain('br0', { family: 4, dns: layout.dns, hostPorts: layout.hostPorts }).map((spec) => `-A ${HOST_CHAIN} ${spec}`),
];
/** The filter table as `iptables -S` lists it: FORWARD jumping to DOCKER-USER, our support in place, and `dockerUser`. */
const table = (dockerUser: string[], extra: string[] = support) => ['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', ...extra, ...dockerUser];
const dockerDefault = table(['-A DOCKER-USER -j RETURN'], []);
const inserts = (script: string | undefined) => script?.split('\n').filter((l) => l.startsWith('-I DOCKER-USER')) ?? [];

describe('planSync', () => {
  it('installs our chains, the INPUT jump and the block at the top of an empty Docker chain, ahead of its RETURN', () => {
    const plan = planSync(dockerDefault, layout);
    expect(plan.script).toBe(
      [
        '*filter',
        `-N ${CLIENTS_CHAIN}`,
        `:${SOURCES_CHAIN} - [0:0]`,
        `:${HOST_CHAIN} - [0:0]`,
        `:${RECORD_CHAIN} - [0:0]`,
        ...[...head(), ...tail()].map((spec, i) => `-I DOCKER-USER ${i + 1} ${spec}`),
        ...sourcesChain('br0', ['192.0.2.0/24']).map((spec) => `-A ${SOURCES_CHAIN} ${spec}`),
        ...hostChain('br0', { family: 4, dns: [{ address: '192.0.2.1', port: 53 }], hostPorts: [] }).map((spec) => `-A ${HOST_CHAIN} ${spec}`),
        `-I INPUT 1 ${hostJumpRule('br0')}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(plan).toMatchObject({ adopted: [], insertAt: 6, rebuilt: true, bypasses: [] });
  });

  it('adopts a block left by a previous run without changing anything', () => {
    const listing = table([...ourBlock(acceptRule('br0', '198.51.100.7', 80, 'a.test.'), acceptRule('br0', '198.51.100.7', 443, 'a.test.')), foreign, '-A DOCKER-USER -j RETURN']);
    const plan = planSync(listing, layout);
    expect(plan.script).toBeUndefined();
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.' }]);
    expect(plan.insertAt).toBe(6);
    expect(plan.rebuilt).toBe(false);
  });

  it('rewrites our own chains alone when they drift, keeping the block', () => {
    const drifted = support.filter((l) => !l.includes('"on-his-name dns"'));
    const plan = planSync(table([...ourBlock(), '-A DOCKER-USER -j RETURN'], drifted), layout);
    expect(plan.rebuilt).toBe(false);
    expect(plan.script).toContain(`:${HOST_CHAIN} - [0:0]`);
    expect(plan.script).not.toContain(`:${SOURCES_CHAIN}`);
    expect(inserts(plan.script)).toEqual([]);
  });

  it('writes the subnets of the network into the source check, and the gateway and host ports into the host chain', () => {
    const wide = testLayout('br0', [443], 4, { subnets: ['192.0.2.0/24', '198.18.0.0/24'], hostPorts: [{ protocol: 'udp', port: 123 }] });
    const script = planSync(dockerDefault, wide).script!;
    expect(script).toContain(`-A ${SOURCES_CHAIN} -s 192.0.2.0/24 -i br0 -m comment --comment "on-his-name source" -j RETURN`);
    expect(script).toContain(`-A ${SOURCES_CHAIN} -s 198.18.0.0/24 -i br0 -m comment --comment "on-his-name source" -j RETURN`);
    expect(script).toContain(`-A ${SOURCES_CHAIN} -i br0 -m comment --comment "on-his-name spoofed" -j DROP`);
    expect(script).toContain(`-A ${HOST_CHAIN} -d 192.0.2.1/32 -i br0 -p udp -m udp --dport 53 -m comment --comment "on-his-name dns" -j RETURN`);
    expect(script).toContain(`-A ${HOST_CHAIN} -i br0 -p udp -m udp --dport 123 -m comment --comment "on-his-name host-port" -j RETURN`);
    expect(script.split('\n').at(-3)).toBe(`-I INPUT 1 ${hostJumpRule('br0')}`);
  });

  it('lets IPv6 neighbour discovery and link-local sources through, as IPv6 needs them', () => {
    const script = planSync(dockerDefault, testLayout('br0', [443], 6)).script!;
    expect(script).toContain(`-A ${SOURCES_CHAIN} -s fe80::/10 -i br0 -m comment --comment "on-his-name source" -j RETURN`);
    expect(script).toContain(`-A ${HOST_CHAIN} -i br0 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "on-his-name neighbour-discovery" -j RETURN`);
    expect(script).toContain(`-d 2001:db8:1::1/128 -i br0 -p tcp -m tcp --dport 53`);
  });

  it('rebuilds a block with other ports, oldest expiry on top', () => {
    const listing = table([...ourBlock(acceptRule('br0', '198.51.100.8', 80, 'b.test.', 300), acceptRule('br0', '198.51.100.7', 80, 'a.test.', 200), acceptRule('br0', '198.51.100.7', 8443, 'a.test.', 200))]);
    const plan = planSync(listing, layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.adopted.map((a) => a.address)).toEqual(['198.51.100.7', '198.51.100.8']);
    expect(inserts(plan.script).filter((l) => l.includes('ACCEPT'))).toEqual([
      `-I DOCKER-USER 6 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 200)}`,
      `-I DOCKER-USER 7 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 200)}`,
      `-I DOCKER-USER 8 ${acceptRule('br0', '198.51.100.8', 80, 'b.test.', 300)}`,
      `-I DOCKER-USER 9 ${acceptRule('br0', '198.51.100.8', 443, 'b.test.', 300)}`,
    ]);
  });

  it('rewrites a block that a RETURN now precedes, keeping its addresses and every foreign rule', () => {
    const plan = planSync(table(['-A DOCKER-USER -j RETURN', ...ourBlock(acceptRule('br0', '198.51.100.7', 80, 'a.test.'), acceptRule('br0', '198.51.100.7', 443, 'a.test.'))]), layout);
    expect(plan.rebuilt).toBe(true);
    const lines = plan.script!.split('\n');
    expect(lines.filter((l) => l.startsWith('-D'))).toHaveLength(9);
    expect(inserts(plan.script)).toEqual([
      ...head().map((spec, i) => `-I DOCKER-USER ${i + 1} ${spec}`),
      `-I DOCKER-USER 6 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.')}`,
      `-I DOCKER-USER 7 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.')}`,
      ...tail().map((spec, i) => `-I DOCKER-USER ${i + 8} ${spec}`),
    ]);
    expect(plan.script).not.toMatch(/-D DOCKER-USER -j RETURN/);
  });

  it.each([
    ['the DROP is missing', head().map(A)],
    ['an accept sits below the DROP', [...head().map(A), A(dropRule('br0')), A(acceptRule('br0', '198.51.100.7', 80))]],
    ['a rule is there twice', ourBlock(acceptRule('br0', '198.51.100.7', 80), acceptRule('br0', '198.51.100.7', 80))],
    ['the base rules are swapped', [A(sourceCheckRule('br0')), A(sameNetworkRule('br0')), A(establishedRule('br0')), A(clientsRule('br0')), A(dropRule('br0'))]],
    ['the source check is missing (a block written before it existed)', [A(establishedRule('br0')), A(sameNetworkRule('br0')), A(clientsRule('br0')), A(dropRule('br0'))]],
    ['the clients jump is missing (a block written before policies)', [A(sourceCheckRule('br0')), A(establishedRule('br0')), A(sameNetworkRule('br0')), A(dropRule('br0'))]],
    ["someone else's rule sits inside the block", [A(sourceCheckRule('br0')), A(establishedRule('br0')), foreign, A(sameNetworkRule('br0')), A(clientsRule('br0')), A(dropRule('br0'))]],
  ])('rebuilds when %s', (_, listing) => {
    const plan = planSync(table(listing), layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.script!.match(/^-I DOCKER-USER \d+ .*-j DROP$/gm)).toHaveLength(1);
  });

  it("leaves another bridge's rules alone", () => {
    const other = [A(establishedRule('br1')), A(sameNetworkRule('br1')), A(dropRule('br1'))];
    const plan = planSync(table(other), layout);
    expect(plan.script).not.toContain('br1');
  });

  it('names the fix when DOCKER-USER does not exist', () => {
    expect(() => planSync(['-P FORWARD ACCEPT'], layout)).toThrow(/DOCKER-USER chain does not exist: start Docker.*--backend nftables/);
  });
});

describe('bypasses', () => {
  it('reports a FORWARD chain that never jumps to DOCKER-USER', () => {
    const listing = dockerDefault.filter((l) => l !== '-A FORWARD -j DOCKER-USER');
    expect(planSync(listing, layout).bypasses).toEqual([expect.stringMatching(/^FORWARD does not jump to DOCKER-USER for br0.*--backend nftables/)]);
  });

  it.each([
    ['an ACCEPT for everything', '-A DOCKER-USER -j ACCEPT'],
    ['an ACCEPT for the bridge', '-A DOCKER-USER -i br0 -j ACCEPT'],
    ['a RETURN for every bridge', '-A DOCKER-USER -i br+ -j RETURN'],
    ['an ACCEPT towards a port', '-A DOCKER-USER -p tcp -m tcp --dport 22 -j ACCEPT'],
    ['an ACCEPT from a range holding the network', '-A DOCKER-USER -s 192.0.0.0/16 -j ACCEPT'],
  ])('reports %s above our block', (_, rule) => {
    const plan = planSync(table([rule, ...ourBlock(), '-A DOCKER-USER -j RETURN']), layout);
    expect(plan.rebuilt).toBe(false);
    expect(plan.bypasses).toEqual([`a rule above on-his-name's block in DOCKER-USER lets traffic from br0 past on-his-name: "${rule}"; remove it or narrow it`]);
  });

  it.each([
    ['another bridge', '-A DOCKER-USER -i br1 -j ACCEPT'],
    ['established flows', '-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
    ['another range', '-A DOCKER-USER -s 10.0.0.0/8 -j ACCEPT'],
    ['a DROP', '-A DOCKER-USER -j DROP'],
  ])('does not report a rule for %s', (_, rule) => {
    expect(planSync(table([rule, ...ourBlock(), '-A DOCKER-USER -j RETURN']), layout).bypasses).toEqual([]);
  });

  it('reports an ACCEPT in FORWARD ahead of the jump, and one in INPUT above our host jump', () => {
    const listing = [
      '-P INPUT ACCEPT',
      '-N DOCKER-USER',
      '-A FORWARD -i br0 -j ACCEPT',
      '-A FORWARD -j DOCKER-USER',
      '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
      ...support,
      ...ourBlock(),
    ];
    expect(planSync(listing, layout).bypasses).toEqual([
      expect.stringContaining('in FORWARD before the jump to DOCKER-USER lets traffic from br0 past on-his-name: "-A FORWARD -i br0 -j ACCEPT"'),
      expect.stringContaining('in INPUT above on-his-name\'s host rules lets traffic from br0 past on-his-name: "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"'),
    ]);
  });

  it('does not report what sits above a block it is about to rewrite at the top', () => {
    const plan = planSync(table(['-A DOCKER-USER -j ACCEPT', A(establishedRule('br0'))]), layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.bypasses).toEqual([]);
  });
});

describe('audit mode and the record chain', () => {
  const audited = { ...layout, audit: true };

  it('ends the block with the record jump and a RETURN to Docker\'s rules instead of the DROP', () => {
    expect(tailRules(audited)).toEqual([recordRule('br0'), '-i br0 -m comment --comment "on-his-name audit" -j RETURN']);
    expect(inserts(planSync(dockerDefault, audited).script).slice(-2)).toEqual([`-I DOCKER-USER 6 ${recordRule('br0')}`, '-I DOCKER-USER 7 -i br0 -m comment --comment "on-his-name audit" -j RETURN']);
  });

  it('switching mode replaces the last rule in place: no accept rule moves, none is rewritten', () => {
    const accepts = [acceptRule('br0', '198.51.100.7', 80, 'a.test.'), acceptRule('br0', '198.51.100.7', 443, 'a.test.')];
    const enforcing = table([...ourBlock(...accepts), '-A DOCKER-USER -j RETURN']);
    const toAudit = planSync(enforcing, audited);
    expect(toAudit.rebuilt).toBe(false);
    expect(toAudit.script).toBe(`*filter\n-R DOCKER-USER 9 ${dropRule('br0', true)}\nCOMMIT\n`);
    const auditing = table([...head().map(A), ...accepts.map(A), ...tailRules(audited).map(A), '-A DOCKER-USER -j RETURN']);
    expect(planSync(auditing, layout).script).toBe(`*filter\n-R DOCKER-USER 9 ${dropRule('br0')}\nCOMMIT\n`);
    expect(planSync(auditing, audited).script).toBeUndefined();
  });

  it('the same for the ipset backend\'s block', () => {
    const SET = 'on-his-name-v4';
    const block = [...head().map(A), A(setAcceptRule('br0', 'tcp', [80, 443], SET)), ...tail().map(A)];
    expect(planSetSync(table(block), audited, SET).script).toBe(`*filter\n-R DOCKER-USER 8 ${dropRule('br0', true)}\nCOMMIT\n`);
  });

  it('a policy chain in audit mode marks what it would drop, for the head\'s marked RETURN to let on to Docker\'s rules', () => {
    expect(policyDropRule('br0', true)).toBe(`-i br0 -m comment --comment "on-his-name policy-audit" -j MARK --set-xmark ${AUDIT_MARK}`);
    expect(head()).toContain(`-i br0 -m mark --mark ${AUDIT_MARK} -m comment --comment "on-his-name audited" -j RETURN`);
    expect(head().indexOf(auditedRule('br0'))).toBe(head().indexOf(clientsRule('br0')) + 1);
    const chain = planPolicySync(['-N DOCKER-USER', '-N ON-HIS-NAME-RECORD'], audited, 'OHN-P-ci').script!;
    expect(chain.split('\n').slice(-4, -2)).toEqual([`-A OHN-P-ci ${recordRule('br0')}`, `-A OHN-P-ci ${policyDropRule('br0', true)}`]);
    expect(parseOwnedRule(`-A OHN-P-ci ${policyDropRule('br0', true)}`)?.role).toBe('drop');
    expect(parseOwnedRule(`-A DOCKER-USER ${dropRule('br0', true)}`)?.role).toBe('drop');
    expect(parseOwnedRule(`-A DOCKER-USER ${auditedRule('br0')}`)?.role).toBe('audited');
  });

  it('fills the record chain with the set when there is one, and leaves it empty without', () => {
    expect(recordChain('ohn-blocked-v4')).toEqual([
      '-m set --match-set ohn-blocked-v4 src,dst,dst -m comment --comment "on-his-name count" -j RETURN',
      '-p tcp -m limit --limit 5000/sec --limit-burst 10000 -m comment --comment "on-his-name record" -j SET --add-set ohn-blocked-v4 src,dst,dst',
      '-p udp -m limit --limit 5000/sec --limit-burst 10000 -m comment --comment "on-his-name record" -j SET --add-set ohn-blocked-v4 src,dst,dst',
    ]);
    const script = planSync(dockerDefault, { ...layout, record: 'ohn-blocked-v4' }).script!;
    expect(script).toContain(`-A ${RECORD_CHAIN} -p tcp -m limit --limit 5000/sec --limit-burst 10000 -m comment --comment "on-his-name record" -j SET --add-set ohn-blocked-v4 src,dst,dst`);
    expect(planSync(dockerDefault, layout).script).not.toContain(`-A ${RECORD_CHAIN}`);
  });

  it('routes a client to its policy chain by goto, so that the chain returns to DOCKER-USER, not to the next route', () => {
    expect(routeRule('br0', '192.0.2.5', 'OHN-P-ci')).toBe('-s 192.0.2.5/32 -i br0 -m comment --comment "on-his-name client" -g OHN-P-ci');
    expect(routeRule('br0', '192.0.2.0/28', 'RETURN')).toBe('-s 192.0.2.0/28 -i br0 -m comment --comment "on-his-name client" -j RETURN');
  });
});

describe('planRemoval', () => {
  it('deletes exactly our rules, of every bridge, in DOCKER-USER and INPUT', () => {
    const listing = table([foreign, ...ourBlock(acceptRule('br0', '198.51.100.7', 80)), A(dropRule('br1')), '-A DOCKER-USER -j RETURN']);
    const script = planRemoval(ownedRules(listing));
    expect(script?.split('\n').filter((l) => l.startsWith('-D'))).toEqual([
      `-D INPUT ${hostJumpRule('br0')}`,
      ...ourBlock(acceptRule('br0', '198.51.100.7', 80)).map((l) => l.replace('-A DOCKER-USER', '-D DOCKER-USER')),
      `-D DOCKER-USER ${dropRule('br1')}`,
    ]);
    expect(planRemoval(ownedRules(dockerDefault))).toBeUndefined();
  });
});

describe('expiry in the kernel', () => {
  const at = (exp: number) => acceptRule('br0', '198.51.100.7', 80, 'a.test.', exp);

  it('adopts the expiry each address carries, and addresses from before expiry without one', () => {
    const listing = table(
      ourBlock(
        acceptRule('br0', '198.51.100.8', 80, 'old.test.'),
        acceptRule('br0', '198.51.100.8', 443, 'old.test.'),
        acceptRule('br0', '198.51.100.7', 80, 'a.test.', 1_764_000_000),
        acceptRule('br0', '198.51.100.7', 443, 'a.test.', 1_764_000_000),
      ),
    );
    const plan = planSync(listing, layout);
    expect(plan.script).toBeUndefined();
    expect(plan.adopted).toEqual([
      { address: '198.51.100.8', name: 'old.test.' },
      { address: '198.51.100.7', name: 'a.test.', expiresAt: 1_764_000_000 },
    ]);
  });

  it('rebuilds when the rules of one address disagree on their expiry, keeping the latest', () => {
    const plan = planSync(table(ourBlock(at(100), acceptRule('br0', '198.51.100.7', 443, 'a.test.', 200))), layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 200 }]);
    expect(inserts(plan.script).filter((l) => l.includes('ACCEPT'))).toEqual([
      `-I DOCKER-USER 6 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 200)}`,
      `-I DOCKER-USER 7 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 200)}`,
    ]);
  });
});

describe('planApply', () => {
  const installed = new Map([
    ['198.51.100.7', { address: '198.51.100.7', name: 'a.test.', expiresAt: 100 }],
    ['198.51.100.8', { address: '198.51.100.8', name: 'b.test.', expiresAt: 200 }],
  ]);

  it('refreshes by deleting the rules as installed and inserting the new ones at the bottom, in one transaction', () => {
    const scripts = planApply([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 500 }], [], installed, layout, 5);
    expect(scripts.map((s) => s.script)).toEqual([
      [
        '*filter',
        `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 100)}`,
        `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 100)}`,
        // Rules 5 and 6 are b.test.'s now: the refreshed address goes below them, above the DROP.
        `-I DOCKER-USER 7 ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 500)}`,
        `-I DOCKER-USER 8 ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 500)}`,
        'COMMIT',
        '',
      ].join('\n'),
    ]);
  });

  it('removes what is installed, skips what is not, and has nothing to do for an empty batch', () => {
    const scripts = planApply([], [{ address: '198.51.100.7' }, { address: '198.51.100.9' }], installed, layout, 4);
    expect(scripts.flatMap((s) => s.script.split('\n').filter((l) => l.startsWith('-')))).toEqual([
      `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 80, 'a.test.', 100)}`,
      `-D DOCKER-USER ${acceptRule('br0', '198.51.100.7', 443, 'a.test.', 100)}`,
    ]);
    expect(planApply([], [{ address: '198.51.100.9' }], installed, layout, 4)).toEqual([]);
  });

  it('cuts a batch into restores that each fit the cost budget, counting deletes by how deep they go', () => {
    const many = new Map(Array.from({ length: 10_000 }, (_, i) => [`10.0.${i >> 8}.${i & 255}`, { address: `10.0.${i >> 8}.${i & 255}`, expiresAt: i }]));
    const entries = [...many.values()];
    const top = planApply([], entries.slice(0, 500), many, layout, 4);
    const bottom = planApply([], entries.slice(-500), many, layout, 4);
    expect(top).toHaveLength(1);
    expect(bottom.length).toBeGreaterThan(50);
    for (const { costMs } of [...top, ...bottom]) expect(costMs).toBeLessThanOrEqual(COST.budgetMs);
    expect(bottom.flatMap((s) => s.script.split('\n').filter((l) => l.startsWith('-D')))).toHaveLength(1_000);
  });
});

describe('planSetSync', () => {
  const SET = 'on-his-name-v4';
  const setBlock = (ports = [80, 443]) => [...head().map(A), A(setAcceptRule('br0', 'tcp', ports, SET)), ...tail().map(A)];
  const installs = (ports = [80, 443]) => [...head(), setAcceptRule('br0', 'tcp', ports, SET), ...tail()].map((spec, i) => `-I DOCKER-USER ${i + 1} ${spec}`);

  it('installs the source check, established, same-network, one set rule and the DROP at the top', () => {
    const plan = planSetSync(table(['-A DOCKER-USER -j RETURN']), layout, SET);
    expect(plan).toEqual({ script: ['*filter', ...installs(), 'COMMIT', ''].join('\n'), adopted: [], rebuilt: true, bypasses: [] });
  });

  it('keeps a block that is already in order', () => {
    expect(planSetSync(table([...setBlock(), foreign, '-A DOCKER-USER -j RETURN']), layout, SET)).toEqual({ script: undefined, adopted: [], rebuilt: false, bypasses: [] });
  });

  it.each([
    ['other ports', [...setBlock([80]), '-A DOCKER-USER -j RETURN']],
    ['behind a RETURN', ['-A DOCKER-USER -j RETURN', ...setBlock()]],
    ['the set rule missing', [...setBlock().filter((l) => !l.includes('match-set')), '-A DOCKER-USER -j RETURN']],
    ['the set rule twice', [...setBlock().slice(0, 6), A(setAcceptRule('br0', 'tcp', [80, 443], SET)), ...tail().map(A)]],
  ])('rewrites the block with %s, keeping foreign rules', (_, listing) => {
    const plan = planSetSync(table([...listing, foreign]), layout, SET);
    const owned = listing.filter((l) => l.includes('on-his-name'));
    expect(plan.rebuilt).toBe(true);
    expect(plan.script).toBe(['*filter', ...owned.map((l) => l.replace('-A DOCKER-USER', '-D DOCKER-USER')), ...installs(), 'COMMIT', ''].join('\n'));
  });

  it("replaces the iptables backend's per-address rules, returning their addresses to move into the set", () => {
    const listing = table([...ourBlock(acceptRule('br0', '198.51.100.7', 443, 'x.test.'), acceptRule('br0', '198.51.100.7', 80, 'x.test.')), '-A DOCKER-USER -j RETURN']);
    const plan = planSetSync(listing, layout, SET);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'x.test.' }]);
    expect(plan.script?.split('\n').filter((l) => l.startsWith('-D'))).toHaveLength(9);
    expect(plan.script).toContain(`-I DOCKER-USER 6 ${setAcceptRule('br0', 'tcp', [80, 443], SET)}`);
  });

  it('and the iptables backend rewrites a set block back into per-address rules', () => {
    const plan = planSync(table([...setBlock(), '-A DOCKER-USER -j RETURN']), layout);
    expect(plan.rebuilt).toBe(true);
    expect(plan.script).toContain(`-D DOCKER-USER ${setAcceptRule('br0', 'tcp', [80, 443], SET)}`);
  });
});
