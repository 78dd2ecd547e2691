/**
 * The network re-created on another bridge: our block moves, new bridge first. Every
 * kernel state the fake records is checked, since each is one a packet could meet.
 */
import { describe, expect, it } from 'vitest';
import { Firewall } from '../../../src/firewall/firewall.js';
import { IpsetBackend } from '../../../src/firewall/ipset-backend.js';
import { IptablesBackend } from '../../../src/firewall/iptables-backend.js';
import { headRules, planSync, tailRules } from '../../../src/firewall/planner.js';
import { removeOwnedRules } from '../../../src/firewall/reset.js';
import { acceptRule, chainOf, parseOwnedRule, setAcceptRule } from '../../../src/firewall/rules.js';
import { fakeIpset } from '../../support/ipset.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

const OLD = 'br-0ld0ld0ld0ld';
const NEW = 'br-9e9e9e9e9e9e';
const layout = testLayout(OLD);
const A = (spec: string) => `-A DOCKER-USER ${spec}`;
const head = (bridge: string) => headRules(bridge);
const tail = (bridge: string) => tailRules({ bridge });
const block = (bridge: string, ...accepts: string[]) => [...head(bridge).map(A), ...accepts.map(A), ...tail(bridge).map(A)];
const foreign = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';

/** For one bridge in a listing: absent, or a whole block (its head, accepts or one set rule, record and DROP ahead of the RETURN) and which addresses it opens. */
function blockOf(listing: readonly string[], bridge: string): 'absent' | 'broken' | { addresses: string[] } {
  const rules = listing.filter((l) => chainOf(l) === 'DOCKER-USER');
  const owned = rules.map(parseOwnedRule).filter((r) => r?.bridge === bridge);
  if (owned.length === 0) return 'absent';
  const roles = owned.map((r) => r!.role);
  const middle = roles.slice(5, -2);
  const whole =
    ['source-check', 'established', 'same-network', 'clients', 'audited'].every((role, i) => roles[i] === role) &&
    roles.at(-2) === 'record' &&
    roles.at(-1) === 'drop' &&
    (middle.every((r) => r === 'accept') || (middle.length === 1 && middle[0] === 'set-accept'));
  const dropAt = rules.findIndex((l) => l === A(owned.at(-1)!.spec));
  const returnAt = rules.indexOf('-A DOCKER-USER -j RETURN');
  if (!whole || (returnAt >= 0 && dropAt > returnAt)) return 'broken';
  return { addresses: [...new Set(owned.filter((r) => r!.role === 'accept').map((r) => r!.address!))].sort() };
}

/** Every state: each bridge absent or whole, never both absent, and the new bridge whole with `open` from its first appearance. */
function expectNoWindow(states: readonly string[][], open: readonly string[], perAddress = true) {
  for (const state of states) {
    const [before, after] = [blockOf(state, OLD), blockOf(state, NEW)];
    expect(before, state.join('\n')).not.toBe('broken');
    expect(after, state.join('\n')).not.toBe('broken');
    expect(before === 'absent' && after === 'absent', state.join('\n')).toBe(false);
    if (typeof after === 'object' && perAddress) expect(after.addresses).toEqual([...open].sort());
  }
}

describe('planning a move', () => {
  it('writes the new bridge a whole block with the carried addresses, in one restore', () => {
    const listing = ['-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', ...block(OLD, acceptRule(OLD, '198.51.100.7', 80, 'a.test.', 1_800_000_000)), '-A DOCKER-USER -j RETURN'];
    const plan = planSync(listing, { ...layout, bridge: NEW }, [{ address: '198.51.100.7', name: 'a.test.', expiresAt: 1_800_000_000 }]);
    expect(plan.script!.split('\n').filter((l) => l.startsWith('-I DOCKER-USER'))).toEqual([
      ...head(NEW).map((spec, i) => `-I DOCKER-USER ${i + 1} ${spec}`),
      `-I DOCKER-USER 6 ${acceptRule(NEW, '198.51.100.7', 80, 'a.test.', 1_800_000_000)}`,
      `-I DOCKER-USER 7 ${acceptRule(NEW, '198.51.100.7', 443, 'a.test.', 1_800_000_000)}`,
      ...tail(NEW).map((spec, i) => `-I DOCKER-USER ${i + 8} ${spec}`),
    ]);
    expect(plan.script).not.toMatch(/^-D /m);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 1_800_000_000 }]);
  });

  it("rebuilds a block the new bridge already has with what is carried, keeping the kernel's text for an address it already opens", () => {
    const listing = ['-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', ...block(NEW, acceptRule(NEW, '198.51.100.7', 80, 'a.test.', 100), acceptRule(NEW, '198.51.100.7', 443, 'a.test.', 100))];
    const plan = planSync(listing, { ...layout, bridge: NEW }, [{ address: '198.51.100.7', expiresAt: 200 }, { address: '198.51.100.8', expiresAt: 200 }]);
    expect(plan.adopted).toEqual([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 100 }, { address: '198.51.100.8', expiresAt: 200 }]);
    expect(plan.script?.split('\n').filter((l) => l.startsWith('-I DOCKER-USER') && l.includes('ACCEPT'))).toEqual([
      `-I DOCKER-USER 6 ${acceptRule(NEW, '198.51.100.7', 80, 'a.test.', 100)}`,
      `-I DOCKER-USER 7 ${acceptRule(NEW, '198.51.100.7', 443, 'a.test.', 100)}`,
      `-I DOCKER-USER 8 ${acceptRule(NEW, '198.51.100.8', 80, undefined, 200)}`,
      `-I DOCKER-USER 9 ${acceptRule(NEW, '198.51.100.8', 443, undefined, 200)}`,
    ]);
  });

  it("retires exactly our rules for the old bridge: not the new bridge's, not someone else's", async () => {
    const listing = ['-N DOCKER-USER', ...block(NEW), foreign, ...block(OLD, acceptRule(OLD, '198.51.100.7', 80)), '-A DOCKER-USER -j RETURN'];
    const kernel = fakeIptables(listing);
    expect((await removeOwnedRules(kernel.runner, 'br-nothere')).length).toBe(0);
    expect(kernel.scripts).toEqual([]);
    await removeOwnedRules(kernel.runner, OLD);
    expect(kernel.chain).toEqual(['-N DOCKER-USER', ...block(NEW), foreign, '-A DOCKER-USER -j RETURN']);
  });
});

describe('Firewall.moveTo', () => {
  async function openOn(kernel = fakeIptables(['-N DOCKER-USER', foreign, '-A DOCKER-USER -j RETURN']), family?: 6) {
    const { log, lines } = recordingLogger();
    const firewall = new Firewall({ runner: kernel.runner, layout: family ? testLayout(OLD, [80, 443], 6) : layout, log, retryDelayMs: { first: 1, max: 2 } });
    await firewall.start();
    const addresses = family === 6 ? ['2001:db8::7', '2001:db8::8'] : ['198.51.100.7', '198.51.100.8'];
    for (const a of addresses) firewall.allow(a, 'a.test.', 60);
    await firewall.settled();
    return { kernel, firewall, lines, addresses };
  }

  it('installs the new block with every open address, then removes the old bridge’s rules: no state without a DROP', async () => {
    const { kernel, firewall, lines, addresses } = await openOn();
    const from = kernel.states.length;
    await firewall.moveTo(NEW);
    expect(blockOf(kernel.chain, OLD)).toBe('absent');
    expect(blockOf(kernel.chain, NEW)).toEqual({ addresses });
    expect(kernel.chain).toContain(foreign);
    expect(kernel.chain.at(-1)).toBe('-A DOCKER-USER -j RETURN');
    expect(kernel.states.length - from).toBe(2); // install, then retire
    expectNoWindow(kernel.states.slice(from - 1), addresses);
    expect(lines.find((l) => String(l.msg).startsWith('moved our rules to the new bridge'))).toMatchObject({ from: OLD, to: NEW, open: 2 });
    // The firewall goes on with the new bridge: a new address, a refresh and an expiry all land there.
    firewall.allow('198.51.100.9', 'b.test.', 60);
    await firewall.settled();
    expect(blockOf(kernel.chain, NEW)).toEqual({ addresses: [...addresses, '198.51.100.9'] });
    expect(kernel.chain.join('\n')).not.toContain(OLD);
  });

  it('moves the IPv6 firewall the same way', async () => {
    const { kernel, firewall, addresses } = await openOn(undefined, 6);
    const from = kernel.states.length;
    await firewall.moveTo(NEW);
    expect(blockOf(kernel.chain, NEW)).toEqual({ addresses });
    expect(blockOf(kernel.chain, OLD)).toBe('absent');
    expect(kernel.chain.filter((l) => l.includes('/128'))).toHaveLength(4);
    expectNoWindow(kernel.states.slice(from - 1), addresses);
  });

  it('finishes a move that failed half-way on the retry, and keeps the old rules until the new block is in', async () => {
    const { kernel, firewall, addresses } = await openOn();
    const from = kernel.states.length;
    // The first restore (the new block) fails: the old block must stay whole.
    kernel.failNext(1);
    await firewall.moveTo(NEW);
    expect(blockOf(kernel.chain, NEW)).toEqual({ addresses });
    expect(blockOf(kernel.chain, OLD)).toBe('absent');
    expectNoWindow(kernel.states.slice(from - 1), addresses);
    expect(firewall.stats.applyFailures).toBe(1);

    // Now the retire step fails once: the new block stays, the old rules go on the retry.
    const other = 'br-0th3r0th3r0';
    const before = kernel.states.length;
    let restores = 0;
    const flaky = { ...kernel.runner, restore: async (s: string) => (++restores === 2 ? Promise.reject(new Error('xtables lock')) : kernel.runner.restore(s)) };
    const backend = new IptablesBackend(flaky, { ...layout, bridge: NEW });
    await backend.sync();
    await expect(backend.moveTo({ ...layout, bridge: other }, addresses.map((address) => ({ address })))).rejects.toThrow(/xtables lock/);
    expect(blockOf(kernel.chain, other)).toEqual({ addresses });
    expect(blockOf(kernel.chain, NEW)).not.toBe('absent');
    await backend.moveTo({ ...layout, bridge: other }, addresses.map((address) => ({ address })));
    expect(blockOf(kernel.chain, NEW)).toBe('absent');
    expect(kernel.states.length).toBeGreaterThan(before);
  });

  it('with the ipset backend: the set stays, the one-rule block moves, new bridge first', async () => {
    const kernel = fakeIptables(['-N DOCKER-USER', foreign, '-A DOCKER-USER -j RETURN']);
    const ipset = fakeIpset();
    const backend = new IpsetBackend({ iptables: kernel.runner, ipset: ipset.runner, layout, maxElements: 1000 });
    const firewall = new Firewall({ backend, log: recordingLogger().log });
    await firewall.start();
    firewall.allow('198.51.100.7', 'a.test.', 60);
    await firewall.settled();
    const from = kernel.states.length;
    const setScripts = ipset.scripts.length;
    await firewall.moveTo(NEW);
    expect(kernel.chain.filter((l) => l.includes('on-his-name'))).toEqual([
      ...head(NEW).map(A),
      A(setAcceptRule(NEW, 'tcp', [80, 443], 'on-his-name-v4')),
      ...tail(NEW).map(A),
    ]);
    expectNoWindow(kernel.states.slice(from - 1), [], false);
    // The addresses never left the set (a rewrite of an element's timeout may follow the re-read).
    expect(ipset.scripts.slice(setScripts).join('')).not.toMatch(/^del /m);
    expect(ipset.sets.get('on-his-name-v4')?.members.has('198.51.100.7')).toBe(true);
    expect(firewall.isAllowed('198.51.100.7')).toBe(true);
  });

  it('moving to the bridge it already filters changes nothing', async () => {
    const { kernel, firewall } = await openOn();
    const scripts = kernel.scripts.length;
    await firewall.moveTo(OLD);
    expect(kernel.scripts).toHaveLength(scripts);
  });
});
