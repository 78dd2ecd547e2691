import { describe, expect, it } from 'vitest';
import { Firewall } from '../../../src/firewall/firewall.js';
import type { IptablesRunner } from '../../../src/firewall/iptables.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';

const layout = { bridge: 'br0', ports: [80, 443] };

describe('Firewall', () => {
  it('installs its block, then opens a burst of addresses with one restore', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    await firewall.start();
    expect(kernel.scripts).toHaveLength(1);
    for (let i = 1; i <= 50; i++) expect(firewall.allow(`198.51.100.${i}`, 'burst.test.')).toBe('queued');
    await firewall.settled();
    expect(kernel.scripts).toHaveLength(2);
    expect(kernel.chain.filter((l) => l.includes('-j ACCEPT'))).toHaveLength(100);
    expect(kernel.chain.at(-2)).toContain('-j DROP');
    expect(kernel.chain.at(-1)).toBe('-A DOCKER-USER -j RETURN');
    expect(firewall.stats).toMatchObject({ applies: 1, addressesAllowed: 50 });
  });

  it('opens only addresses of its own family: IPv6 in an ip6tables firewall, IPv4 in an iptables one', async () => {
    const kernel = fakeIptables();
    const v6 = new Firewall({ runner: kernel.runner, layout: { ...layout, family: 6 }, log: recordingLogger().log });
    await v6.start();
    expect(v6.allow('198.51.100.1')).toBe('invalid');
    expect(v6.allow('2001:db8::1', 'six.test.')).toBe('queued');
    await v6.settled();
    expect(kernel.chain.filter((l) => l.includes('-d 2001:db8::1/128'))).toHaveLength(2);
    const v4 = new Firewall({ runner: fakeIptables().runner, layout, log: recordingLogger().log });
    await v4.start();
    expect(v4.allow('2001:db8::1')).toBe('invalid');
  });

  it('never adds the same address twice', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    await firewall.start();
    expect(firewall.allow('198.51.100.1')).toBe('queued');
    expect(firewall.allow('198.51.100.1')).toBe('known');
    await firewall.settled();
    expect(firewall.allow('198.51.100.1')).toBe('known');
    await firewall.settled();
    expect(kernel.chain.filter((l) => l.includes('198.51.100.1/32'))).toHaveLength(2);
  });

  it('retries a failed apply and counts the address only once the kernel has it', async () => {
    const kernel = fakeIptables();
    const { log, lines } = recordingLogger();
    const firewall = new Firewall({ runner: kernel.runner, layout, log, retryDelayMs: { first: 1, max: 2 } });
    await firewall.start();
    kernel.failNext(2);
    firewall.allow('198.51.100.1');
    await new Promise((r) => setImmediate(r));
    expect(firewall.isAllowed('198.51.100.1')).toBe(false);
    await firewall.settled();
    expect(firewall.isAllowed('198.51.100.1')).toBe(true);
    expect(firewall.stats.applyFailures).toBe(2);
    expect(lines.filter((l) => l.msg.includes('apply failed'))).toHaveLength(2);
    expect(kernel.chain.filter((l) => l.includes('198.51.100.1/32'))).toHaveLength(2);
  });

  it('adopts the addresses a previous run opened, adding no duplicate', async () => {
    const kernel = fakeIptables();
    const first = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    await first.start();
    first.allow('198.51.100.1', 'a.test.');
    await first.settled();
    const before = [...kernel.chain];

    const second = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    expect(await second.start()).toEqual({ adopted: 1, rebuilt: false });
    expect(second.allow('198.51.100.1')).toBe('known');
    await second.settled();
    expect(kernel.chain).toEqual(before);
  });

  it('bounds its queue and counts what it drops', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log, maxPending: 2 });
    await firewall.start();
    expect(['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((a) => firewall.allow(a))).toEqual(['queued', 'queued', 'dropped']);
    expect(firewall.stats.droppedFromQueue).toBe(1);
    await firewall.settled();
  });

  it('refuses what is not an IPv4 address', () => {
    const firewall = new Firewall({ runner: fakeIptables().runner, layout, log: recordingLogger().log });
    expect(firewall.allow('198.51.100.1/0 -j ACCEPT')).toBe('invalid');
  });

  it('measures the time from queueing to the kernel', async () => {
    let clock = 1000;
    const kernel = fakeIptables();
    const slow: IptablesRunner = { list: kernel.runner.list, restore: async (s) => { clock += 7; await kernel.runner.restore(s); } };
    const firewall = new Firewall({ runner: slow, layout, log: recordingLogger().log, now: () => clock });
    await firewall.start();
    firewall.allow('198.51.100.1');
    await firewall.settled();
    expect(firewall.stats.lastLatencyMs).toBe(7);
  });
});
