/**
 * PolicyFirewalls: a Firewall per policy and family, and the routes to them, changed in a
 * safe order. The fake iptables refuses what the kernel refuses (a jump to a chain that does
 * not exist, deleting a chain still jumped to), and the scripts it records show the order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { Closers } from '../../../src/daemon/closers.js';
import type { FilteredBridge } from '../../../src/daemon/filtered-bridge.js';
import { kernelsFor, type Route } from '../../../src/daemon/kernels.js';
import { PolicyFirewalls } from '../../../src/daemon/policy-firewalls.js';
import { parseOwnedRule, policyDropRule, recordRule, routeRule, setAcceptRule } from '../../../src/firewall/rules.js';
import { PolicySet, type Policy } from '../../../src/policy/policies.js';
import { parsePolicyFile } from '../../../src/policy/policy-file.js';
import { FakeClock } from '../../support/clock.js';
import { fakeIpset } from '../../support/ipset.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';

const VIEW: FilteredBridge = {
  bridge: 'br0',
  4: { subnets: ['172.18.0.0/16'], dns: [{ address: '172.18.0.1', port: 53 }] },
  6: { subnets: ['fd00:18::/64'], dns: [{ address: 'fd00:18::1', port: 53 }] },
  ipv6Because: undefined,
};
const policiesOf = (yaml: string) => PolicySet.compile(['allowed.test.'], [{ protocol: 'tcp', port: 443 }], parsePolicyFile(yaml, 'policies.yaml'));
const CI = 'policies:\n  ci: {allow: [github.com., "*.github.com."]}\n';
const CI_AND_WEB = 'policies:\n  ci: {allow: [github.com., "*.github.com."]}\n  web: {allow: [api.stripe.com.]}\n';

let running: PolicyFirewalls | undefined;
afterEach(async () => {
  await running?.stop(1_000, recordingLogger().log);
  running = undefined;
});

async function setUp(backend: 'iptables' | 'ipset', yaml: string, routes: Route[] = [], timed: { clock?: FakeClock; reconcileInterval?: number } = {}) {
  const v4 = fakeIptables();
  const v6 = fakeIptables();
  const ipset = fakeIpset();
  const config = parseConfig(['--backend', backend, '--interface', 'br0', '--reconcile-interval', String(timed.reconcileInterval ?? 0), 'allowed.test.'], {});
  const { log, lines } = recordingLogger();
  const kernels = await kernelsFor(config, VIEW, { runner: v4.runner, runner6: v6.runner, ipset: () => ipset.runner, log }, new Closers());
  const firewalls = new PolicyFirewalls({ kernels, config, log, ipv6Because: undefined, ...(timed.clock ? { clock: timed.clock } : {}) });
  running = firewalls;
  const policies = policiesOf(yaml);
  await firewalls.start(policies.defaultPolicy, [...policies.named.values()], routes);
  return { v4, v6, ipset, firewalls, policies, lines };
}

/** Open `address` for `name` in `policy`'s IPv4 firewall and wait for the kernel. */
async function open(firewalls: PolicyFirewalls, policy: string, address: string, name: string) {
  const firewall = firewalls.firewall(policy, 4)!;
  expect(firewall.allow(address, name, 300)).toBe('queued');
  await firewall.settled();
}
const accepts = (rules: readonly string[]) => rules.map(parseOwnedRule).filter((r) => r?.role === 'accept').map((r) => `${r!.address} ${r!.protocol}/${r!.port}`);
const chains = (listing: readonly string[]) => listing.filter((l) => l.startsWith('-N ')).map((l) => l.slice(3));
const firstScript = (scripts: readonly string[], has: string) => scripts.findIndex((s) => s.includes(has));
const all = (policies: PolicySet): Policy[] => policies.all;
/** Turns of the event loop until `done` holds: a barrier, bounded. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((r) => setImmediate(r));
  expect(done()).toBe(true);
}

describe('PolicyFirewalls.start', () => {
  it("installs the default policy's block in DOCKER-USER, a chain per other policy, then the routes", async () => {
    const { v4, v6, firewalls } = await setUp('iptables', CI, [{ client: '172.18.0.2', policy: 'ci' }]);
    expect(v4.rules('DOCKER-USER').map((l) => parseOwnedRule(l)?.role)).toEqual(['source-check', 'established', 'same-network', 'clients', 'audited', 'record', 'drop', undefined]);
    expect(v4.rules('OHN-P-ci')).toEqual([`-A OHN-P-ci ${recordRule('br0')}`, `-A OHN-P-ci ${policyDropRule('br0')}`]);
    expect(v6.rules('OHN-P-ci')).toEqual([`-A OHN-P-ci ${recordRule('br0')}`, `-A OHN-P-ci ${policyDropRule('br0')}`]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-ci')}`]);
    expect(firewalls.list().map((f) => `${f.policy.name}/${f.family}`)).toEqual(['default/4', 'default/6', 'ci/4', 'ci/6']);
    expect(firewalls.ipv6).toBe(true);
  });
});

describe('PolicyFirewalls.update', () => {
  it("adds a policy: its chain exists before a route names it, and its firewall opens addresses in it", async () => {
    const { v4, firewalls } = await setUp('iptables', CI);
    const next = policiesOf(CI_AND_WEB);
    await firewalls.update(all(next), [{ client: '172.18.0.3', policy: 'web' }]);

    const created = firstScript(v4.scripts, ':OHN-P-web');
    const routed = firstScript(v4.scripts, '-g OHN-P-web');
    expect(created).toBeGreaterThanOrEqual(0);
    expect(routed).toBeGreaterThan(created);
    await open(firewalls, 'web', '198.51.100.7', 'api.stripe.com.');
    expect(accepts(v4.rules('OHN-P-web'))).toEqual(['198.51.100.7 tcp/443']);
    expect(accepts(v4.rules('DOCKER-USER'))).toEqual([]);
  });

  it("removes a policy: the routes leave it first, then its firewalls stop and its chain goes with the addresses it held", async () => {
    const { v4, firewalls } = await setUp('iptables', CI_AND_WEB, [{ client: '172.18.0.3', policy: 'web' }]);
    await open(firewalls, 'web', '198.51.100.7', 'api.stripe.com.');
    const from = v4.scripts.length;

    await firewalls.update(all(policiesOf(CI)), []);

    const scripts = v4.scripts.slice(from);
    const unrouted = scripts.findIndex((s) => s.includes(':ON-HIS-NAME-CLIENTS'));
    const deleted = firstScript(scripts, '-X OHN-P-web');
    expect(unrouted).toBeGreaterThanOrEqual(0);
    expect(deleted).toBeGreaterThan(unrouted);
    expect(chains(await v4.runner.list())).not.toContain('OHN-P-web');
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([]);
    expect(firewalls.firewall('web', 4)).toBeUndefined();
    expect(firewalls.list().map((f) => f.policy.name)).not.toContain('web');
    expect(JSON.stringify(await v4.runner.list())).not.toContain('198.51.100.7');
  });

  it('moves a client from one policy to another in one rewrite of the routes', async () => {
    const { v4, firewalls } = await setUp('iptables', CI_AND_WEB, [{ client: '172.18.0.2', policy: 'ci' }]);
    await firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.2', policy: 'web' }]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-web')}`]);
    // Every state the kernel went through sent the client to exactly one place.
    expect(v4.scripts.filter((s) => s.includes(':ON-HIS-NAME-CLIENTS')).at(-1)).toBe(
      `*filter\n:ON-HIS-NAME-CLIENTS - [0:0]\n-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-web')}\nCOMMIT\n`,
    );
  });

  it('a reload that drops a pattern closes the addresses that pattern opened, and keeps the rest', async () => {
    const { v4, firewalls, lines } = await setUp('iptables', CI);
    await open(firewalls, 'ci', '198.51.100.1', 'github.com.');
    await open(firewalls, 'ci', '198.51.100.2', 'api.github.com.');
    await open(firewalls, 'default', '198.51.100.3', 'allowed.test.');

    await firewalls.update(all(policiesOf('policies:\n  ci: {allow: [github.com.]}\n')), []);
    await firewalls.firewall('ci', 4)!.settled();

    expect(accepts(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1 tcp/443']);
    expect(accepts(v4.rules('DOCKER-USER'))).toEqual(['198.51.100.3 tcp/443']);
    expect(firewalls.firewall('ci', 4)!.isAllowed('198.51.100.2')).toBe(false);
    expect(lines.filter((l) => l.msg === 'the policy no longer allows these names: closing their addresses')).toMatchObject([{ policy: 'ci', closed: 1, addresses: ['198.51.100.2 api.github.com.'] }]);
  });

  it("closes in the default policy too when the file's top-level allow loses a name", async () => {
    const { v4, firewalls } = await setUp('iptables', 'allow: [extra.test.]\n');
    await open(firewalls, 'default', '198.51.100.3', 'allowed.test.');
    await open(firewalls, 'default', '198.51.100.4', 'extra.test.');
    await firewalls.update(all(policiesOf('allow: []\n')), []);
    await firewalls.firewall('default', 4)!.settled();
    expect(accepts(v4.rules('DOCKER-USER'))).toEqual(['198.51.100.3 tcp/443']);
  });

  it('a ports change rewrites the policy\'s rules on the new ports, keeping every open address', async () => {
    const { v4, firewalls } = await setUp('iptables', CI);
    await open(firewalls, 'ci', '198.51.100.1', 'github.com.');
    await firewalls.update(all(policiesOf('policies:\n  ci: {allow: [github.com.], ports: [22, udp/443]}\n')), []);
    expect(accepts(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1 tcp/22', '198.51.100.1 udp/443']);
    expect(v4.rules('OHN-P-ci').at(-1)).toBe(`-A OHN-P-ci ${policyDropRule('br0')}`);
    expect(firewalls.firewall('ci', 4)!.isAllowed('198.51.100.1')).toBe(true);
    // New answers open on the new ports.
    await open(firewalls, 'ci', '198.51.100.9', 'github.com.');
    expect(accepts(v4.rules('OHN-P-ci'))).toContain('198.51.100.9 udp/443');
  });

  it("a ports change of the default policy rewrites DOCKER-USER's accept rules", async () => {
    const { v4, firewalls } = await setUp('iptables', 'ports: [443]\n');
    await open(firewalls, 'default', '198.51.100.3', 'allowed.test.');
    await firewalls.update(all(policiesOf('ports: [8443]\n')), []);
    expect(accepts(v4.rules('DOCKER-USER'))).toEqual(['198.51.100.3 tcp/8443']);
  });

  it('changes nothing in the kernel when nothing changed', async () => {
    const { v4, v6, firewalls } = await setUp('iptables', CI, [{ client: '172.18.0.2', policy: 'ci' }]);
    await open(firewalls, 'ci', '198.51.100.1', 'github.com.');
    const [four, six] = [v4.scripts.length, v6.scripts.length];
    await firewalls.update(all(policiesOf(CI)), [{ client: '172.18.0.2', policy: 'ci' }]);
    expect([v4.scripts.length, v6.scripts.length]).toEqual([four, six]);
  });

  it('routes a refused container to a chain that drops everything', async () => {
    const { v4, firewalls, policies } = await setUp('iptables', CI);
    const refused = policies.forLabels({ 'on-his-name.allow': '*' }, 'a'.repeat(64))!;
    await firewalls.update([...all(policies), refused], [{ client: '172.18.0.9', policy: 'refused' }]);
    expect(v4.rules('OHN-P-refused')).toEqual([`-A OHN-P-refused ${recordRule('br0')}`, `-A OHN-P-refused ${policyDropRule('br0')}`]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.9', 'OHN-P-refused')}`]);
    expect(firewalls.firewall('refused', 4)!.layout.ports).toEqual([]);
  });

  it('applies updates one at a time, in the order asked', async () => {
    const { v4, firewalls } = await setUp('iptables', CI);
    const first = firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.3', policy: 'web' }]);
    const second = firewalls.update(all(policiesOf(CI)), []);
    await Promise.all([first, second]);
    expect(chains(await v4.runner.list())).not.toContain('OHN-P-web');
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([]);
  });

  it('recovers from a kernel that refused to create a policy: the next update creates it and writes the routes', async () => {
    const { v4, firewalls } = await setUp('iptables', CI);
    v4.failNext(1); // the xtables lock, held by someone else for a moment
    await expect(firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.3', policy: 'web' }])).rejects.toThrow(/xtables lock/);

    // The next container event, or reload, asks for the same again.
    await firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.3', policy: 'web' }]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.3', 'OHN-P-web')}`]);
    expect(firewalls.firewall('web', 4)).toBeDefined();
    await open(firewalls, 'web', '198.51.100.7', 'api.stripe.com.');
    expect(accepts(v4.rules('OHN-P-web'))).toEqual(['198.51.100.7 tcp/443']);
  });
});

describe('PolicyFirewalls.reconcile', () => {
  it('makes a change the kernel refused, without waiting for another Docker event or reload', async () => {
    // A container of ci died and a container of web took its address: until the routes say
    // so, web's client is sent to ci's chain and reaches what ci opened.
    const { v4, firewalls } = await setUp('iptables', CI, [{ client: '172.18.0.2', policy: 'ci' }]);
    v4.failNext(1);
    await expect(firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.2', policy: 'web' }])).rejects.toThrow(/xtables lock/);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-ci')}`]);

    await firewalls.reconcile();
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-web')}`]);
    expect(firewalls.firewall('web', 4)).toBeDefined();
  });

  it('restores routes someone else removed', async () => {
    const { v4, firewalls } = await setUp('iptables', CI, [{ client: '172.18.0.2', policy: 'ci' }]);
    await v4.runner.restore('*filter\n:ON-HIS-NAME-CLIENTS - [0:0]\nCOMMIT\n');
    await firewalls.reconcile();
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-ci')}`]);
  });

  it('runs by itself every --reconcile-interval, and leaves no timer behind once stopped', async () => {
    const clock = new FakeClock();
    const { v4, firewalls } = await setUp('iptables', CI, [{ client: '172.18.0.2', policy: 'ci' }], { clock, reconcileInterval: 15 });
    const routed = [`-A ON-HIS-NAME-CLIENTS ${routeRule('br0', '172.18.0.2', 'OHN-P-ci')}`];
    const lists = () => v4.scripts.length;
    await v4.runner.restore('*filter\n:ON-HIS-NAME-CLIENTS - [0:0]\nCOMMIT\n');
    const before = lists();
    await clock.advance(14_999);
    expect(lists()).toBe(before);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([]);
    await clock.advance(1);
    await until(() => v4.rules('ON-HIS-NAME-CLIENTS').length === 1);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual(routed);
    await running!.stop(1_000, recordingLogger().log);
    running = undefined;
    expect(clock.pending).toBe(0);
  });
});

describe('PolicyFirewalls.stop', () => {
  it('gives queued rules its grace on the clock, then stops with them still waiting and says so', async () => {
    const clock = new FakeClock();
    const { v4, firewalls } = await setUp('iptables', CI, [], { clock });
    const { log, lines } = recordingLogger();
    v4.failNext(1_000); // a kernel that keeps refusing
    firewalls.firewall('default', 4)!.allow('198.51.100.7', 'allowed.test.', 300);
    await until(() => firewalls.firewall('default', 4)!.stats.applyFailures > 0);
    let stopped = false;
    const stopping = firewalls.stop(5_000, log).then(() => (stopped = true));
    running = undefined;
    await clock.advance(4_999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await stopping;
    expect(lines.find((l) => l.msg.startsWith('stopping with addresses still waiting'))).toMatchObject({ graceMs: 5_000 });
    expect(firewalls.firewall('default', 4)!.isAllowed('198.51.100.7')).toBe(false);
    expect(clock.pending).toBe(0); // no retry left waiting
  });

  it('lets the change under way end before it stops, and starts none after: the kernel tools close after it, and a late change would start them again', async () => {
    const v4 = fakeIptables();
    let gate: Promise<void> | undefined;
    let open = () => {};
    let reads = 0;
    const runner = { ...v4.runner, list: async () => (reads++, await gate, v4.runner.list()) };
    const config = parseConfig(['--backend', 'iptables', '--interface', 'br0', '--reconcile-interval', '0', 'allowed.test.'], {});
    const { log, lines } = recordingLogger();
    const kernels = await kernelsFor(config, VIEW, { runner, runner6: fakeIptables().runner, ipset: () => fakeIpset().runner, log }, new Closers());
    const firewalls = new PolicyFirewalls({ kernels, config, log, ipv6Because: undefined });
    const policies = policiesOf(CI);
    await firewalls.start(policies.defaultPolicy, [...policies.named.values()], [{ client: '172.18.0.2', policy: 'ci' }]);

    // A reconcile (the ruleset watch asked for one) is reading the kernel when the stop comes.
    gate = new Promise((resolve) => (open = resolve));
    const readsBefore = reads;
    const reconciling = firewalls.reconcile();
    await until(() => reads > readsBefore);
    let stopped = false;
    const stopping = firewalls.stop(5_000, log).then(() => (stopped = true));
    for (let turn = 0; turn < 50; turn++) await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    open();
    gate = undefined;
    await Promise.all([reconciling, stopping]);

    const [scripts, readsAtStop] = [v4.scripts.length, reads];
    await firewalls.reconcile();
    await firewalls.update(all(policiesOf(CI_AND_WEB)), [{ client: '172.18.0.3', policy: 'web' }]);
    expect([v4.scripts.length, reads]).toEqual([scripts, readsAtStop]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('stops at once, without a warning, when every rule has landed', async () => {
    const clock = new FakeClock();
    const { firewalls } = await setUp('iptables', CI, [], { clock });
    const { log, lines } = recordingLogger();
    await open(firewalls, 'default', '198.51.100.7', 'allowed.test.');
    running = undefined;
    await firewalls.stop(5_000, log);
    expect(lines).toEqual([]);
  });
});

describe('PolicyFirewalls with the ipset backend', () => {
  it('gives each policy its set, and a ports change rewrites the set rules', async () => {
    const { v4, ipset, firewalls } = await setUp('ipset', CI);
    expect([...ipset.sets.keys()].sort()).toEqual(['ohn-blocked-v4', 'ohn-blocked-v6', 'ohn-p-ci-v4', 'ohn-p-ci-v6', 'on-his-name-v4', 'on-his-name-v6']);
    await open(firewalls, 'ci', '198.51.100.1', 'github.com.');
    expect([...ipset.sets.get('ohn-p-ci-v4')!.members.keys()]).toEqual(['198.51.100.1']);
    expect(v4.rules('OHN-P-ci')).toEqual([`-A OHN-P-ci ${setAcceptRule('br0', 'tcp', [443], 'ohn-p-ci-v4')}`, `-A OHN-P-ci ${recordRule('br0')}`, `-A OHN-P-ci ${policyDropRule('br0')}`]);

    await firewalls.update(all(policiesOf('policies:\n  ci: {allow: [github.com.], ports: [443, udp/443]}\n')), []);
    expect(v4.rules('OHN-P-ci')).toEqual([
      `-A OHN-P-ci ${setAcceptRule('br0', 'tcp', [443], 'ohn-p-ci-v4')}`,
      `-A OHN-P-ci ${setAcceptRule('br0', 'udp', [443], 'ohn-p-ci-v4')}`,
      `-A OHN-P-ci ${recordRule('br0')}`,
      `-A OHN-P-ci ${policyDropRule('br0')}`,
    ]);
    expect([...ipset.sets.get('ohn-p-ci-v4')!.members.keys()]).toEqual(['198.51.100.1']);
  });

  it('a reload that drops a pattern takes its addresses out of the set', async () => {
    const { ipset, firewalls } = await setUp('ipset', CI);
    await open(firewalls, 'ci', '198.51.100.1', 'github.com.');
    await open(firewalls, 'ci', '198.51.100.2', 'api.github.com.');
    await firewalls.update(all(policiesOf('policies:\n  ci: {allow: ["*.github.com."]}\n')), []);
    await firewalls.firewall('ci', 4)!.settled();
    expect([...ipset.sets.get('ohn-p-ci-v4')!.members.keys()]).toEqual(['198.51.100.2']);
  });

  it('removes a policy: its routes, then its chains, then its sets', async () => {
    const { v4, ipset, firewalls } = await setUp('ipset', CI_AND_WEB, [{ client: '172.18.0.3', policy: 'web' }]);
    await open(firewalls, 'web', '198.51.100.7', 'api.stripe.com.');
    await firewalls.update(all(policiesOf(CI)), []);
    expect(chains(await v4.runner.list())).not.toContain('OHN-P-web');
    expect([...ipset.sets.keys()].sort()).toEqual(['ohn-blocked-v4', 'ohn-blocked-v6', 'ohn-p-ci-v4', 'ohn-p-ci-v6', 'on-his-name-v4', 'on-his-name-v6']);
  });
});
