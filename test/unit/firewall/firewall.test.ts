import { describe, expect, it, vi } from 'vitest';
import { Firewall } from '../../../src/firewall/firewall.js';
import type { IptablesRunner } from '../../../src/firewall/iptables.js';
import { acceptRule } from '../../../src/firewall/rules.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

const layout = testLayout();

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

describe('Firewall expiry, refresh, limits and reconcile', () => {
  const T0 = 1_764_000_000;
  const accepts = (chain: readonly string[]) => chain.filter((l) => l.includes('-j ACCEPT'));
  const comments = (chain: readonly string[], address: string) =>
    [...new Set(accepts(chain).filter((l) => l.includes(`${address}/32`)).map((l) => /--comment "([^"]*)"/.exec(l)?.[1]))];

  async function setup(options: { minTtl?: number; ttlGrace?: number; maxIps?: number; kernel?: ReturnType<typeof fakeIptables> } = {}) {
    const clock = { now: T0 };
    const kernel = options.kernel ?? fakeIptables();
    const recorder = recordingLogger();
    const firewall = new Firewall({
      runner: kernel.runner,
      layout,
      log: recorder.log,
      clock: () => clock.now,
      minTtl: options.minTtl ?? 60,
      ttlGrace: options.ttlGrace ?? 120,
      ...(options.maxIps ? { maxIps: options.maxIps } : {}),
    });
    const started = await firewall.start();
    await firewall.settled();
    return { clock, kernel, firewall, started, ...recorder };
  }

  it('writes each address with its expiry, TTL + grace with a floor, into the rule comment', async () => {
    const { kernel, firewall } = await setup();
    firewall.allow('198.51.100.1', 'long.test.', 3600);
    firewall.allow('198.51.100.2', 'short.test.', 5);
    await firewall.settled();
    firewall.stop();
    expect(comments(kernel.chain, '198.51.100.1')).toEqual([`on-his-name exp=${T0 + 3600 + 120} long.test.`]);
    expect(comments(kernel.chain, '198.51.100.2')).toEqual([`on-his-name exp=${T0 + 60 + 120} short.test.`]);
    expect(firewall.entries()).toContainEqual({ address: '198.51.100.2', name: 'short.test.', expiresAt: T0 + 180 });
  });

  it('refreshes the lifetime on a new answer, rewriting the rule only when it lags by half the grace, in one batch', async () => {
    const { clock, kernel, firewall } = await setup();
    for (let i = 1; i <= 20; i++) firewall.allow(`198.51.100.${i}`, 'a.test.', 60);
    await firewall.settled();
    const scripts = kernel.scripts.length;

    clock.now += 59;
    for (let i = 1; i <= 20; i++) expect(firewall.allow(`198.51.100.${i}`, 'a.test.', 60)).toBe('known');
    await firewall.settled();
    expect(kernel.scripts).toHaveLength(scripts);

    clock.now += 1;
    for (let i = 1; i <= 20; i++) expect(firewall.allow(`198.51.100.${i}`, 'a.test.', 60)).toBe('refreshed');
    await firewall.settled();
    firewall.stop();
    expect(kernel.scripts).toHaveLength(scripts + 1);
    expect(accepts(kernel.chain)).toHaveLength(40);
    expect(comments(kernel.chain, '198.51.100.7')).toEqual([`on-his-name exp=${T0 + 60 + 180} a.test.`]);
    expect(firewall.stats).toMatchObject({ refreshes: 20, addressesAllowed: 20 });
  });

  it('removes expired addresses in one restore and nothing before their time', async () => {
    const { clock, kernel, firewall, lines } = await setup();
    for (let i = 1; i <= 10; i++) firewall.allow(`198.51.100.${i}`, 'short.test.', 0);
    firewall.allow('198.51.100.99', 'long.test.', 3600);
    await firewall.settled();
    const scripts = kernel.scripts.length;

    clock.now = T0 + 179;
    expect(firewall.expire()).toBe(0);
    clock.now = T0 + 180;
    expect(firewall.expire()).toBe(10);
    expect(firewall.isAllowed('198.51.100.1')).toBe(true); // until the kernel has let it go
    await firewall.settled();
    firewall.stop();
    expect(kernel.scripts).toHaveLength(scripts + 1);
    expect(kernel.scripts.at(-1)!.match(/^-D /gm)).toHaveLength(20);
    expect(accepts(kernel.chain).map((l) => /-d (\S+)\/32/.exec(l)?.[1])).toEqual(['198.51.100.99', '198.51.100.99']);
    expect(firewall.isAllowed('198.51.100.1')).toBe(false);
    expect(firewall.stats.expired).toBe(10);
    expect(lines.find((l) => l.msg.startsWith('addresses expired'))).toMatchObject({ expired: 10 });
  });

  it('closes a large wave of expiries in bounded batches, and a new answer does not wait behind them', async () => {
    const { clock, kernel, firewall } = await setup();
    for (let i = 0; i < 1_200; i++) firewall.allow(`198.51.${100 + (i >> 8)}.${i & 255}`, `wave${i % 10}.test.`, 0);
    await firewall.settled();
    const scripts = kernel.scripts.length;
    clock.now = T0 + 180;
    expect(firewall.expire()).toBe(1_200);
    expect(firewall.allow('203.0.113.1', 'fresh.test.', 60)).toBe('queued');
    await firewall.settled();
    firewall.stop();
    const batches = kernel.scripts.slice(scripts).map((script) => ({
      deletes: script.match(/^-D /gm)?.length ?? 0,
      inserts: script.match(/^-I /gm)?.length ?? 0,
    }));
    expect(batches).toEqual([
      { deletes: 0, inserts: 2 },
      { deletes: 2_048, inserts: 0 },
      { deletes: 352, inserts: 0 },
    ]);
    expect(accepts(kernel.chain)).toHaveLength(2);
  });

  it('a new answer for an address about to be closed keeps it open', async () => {
    const { clock, kernel, firewall } = await setup();
    firewall.allow('198.51.100.1', 'a.test.', 0);
    await firewall.settled();
    clock.now = T0 + 200;
    firewall.expire();
    expect(firewall.allow('198.51.100.1', 'a.test.', 0)).toBe('refreshed');
    await firewall.settled();
    firewall.stop();
    expect(comments(kernel.chain, '198.51.100.1')).toEqual([`on-his-name exp=${T0 + 200 + 180} a.test.`]);
  });

  it('runs the expiry timer itself once started', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { clock, kernel, firewall } = await setup({ minTtl: 1, ttlGrace: 0 });
      firewall.allow('198.51.100.1', 'a.test.', 0);
      await firewall.settled();
      clock.now = T0 + 2;
      await vi.advanceTimersByTimeAsync(2_000);
      await firewall.settled();
      firewall.stop();
      expect(accepts(kernel.chain)).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('after a restart keeps the expiry read from the kernel, gives rules from before expiry a fresh lifetime, and closes the expired', async () => {
    const kernel = fakeIptables();
    const first = await setup({ kernel });
    first.firewall.allow('198.51.100.1', 'kept.test.', 3600);
    first.firewall.allow('198.51.100.2', 'gone.test.', 0);
    await first.firewall.settled();
    first.firewall.stop();
    // A rule written by a version without expiry.
    await kernel.runner.restore(`*filter\n-I DOCKER-USER 6 ${acceptRule('br0', '198.51.100.3', 80, 'old.test.')}\n-I DOCKER-USER 6 ${acceptRule('br0', '198.51.100.3', 443, 'old.test.')}\nCOMMIT\n`);

    const clock = { now: T0 + 1000 };
    const second = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log, clock: () => clock.now, minTtl: 60, ttlGrace: 120 });
    expect(await second.start()).toEqual({ adopted: 3, rebuilt: false });
    await second.settled();
    second.stop();
    expect(second.entries().sort((a, b) => a.address.localeCompare(b.address))).toEqual([
      { address: '198.51.100.1', name: 'kept.test.', expiresAt: T0 + 3720 },
      { address: '198.51.100.3', name: 'old.test.', expiresAt: T0 + 1000 + 180 },
    ]);
    expect(comments(kernel.chain, '198.51.100.1')).toEqual([`on-his-name exp=${T0 + 3720} kept.test.`]);
    expect(comments(kernel.chain, '198.51.100.2')).toEqual([]);
    expect(comments(kernel.chain, '198.51.100.3')).toEqual([`on-his-name exp=${T0 + 1180} old.test.`]);
  });

  it('bounds the tracked addresses, closing the one closest to expiry (oldest first among equals) and saying so', async () => {
    const { kernel, firewall, lines } = await setup({ maxIps: 3 });
    firewall.allow('198.51.100.1', 'a.test.', 600);
    firewall.allow('198.51.100.2', 'b.test.', 60);
    firewall.allow('198.51.100.3', 'c.test.', 60);
    await firewall.settled();
    expect(firewall.allow('198.51.100.4', 'd.test.', 60)).toBe('queued');
    await firewall.settled();
    firewall.stop();
    expect(firewall.allowedCount).toBe(3);
    expect(firewall.isAllowed('198.51.100.2')).toBe(false);
    expect(comments(kernel.chain, '198.51.100.2')).toEqual([]);
    expect(firewall.stats.evicted).toBe(1);
    expect(lines.find((l) => l.msg.startsWith('address limit reached'))).toMatchObject({ address: '198.51.100.2', name: 'b.test.', maxIps: 3 });
  });

  it('restores a flushed chain and every live address on reconcile, saying what was missing', async () => {
    const { clock, kernel, firewall, lines } = await setup();
    firewall.allow('198.51.100.1', 'a.test.', 3600);
    firewall.allow('198.51.100.2', 'b.test.', 0);
    await firewall.settled();
    const before = [...kernel.chain];
    clock.now = T0 + 10;
    kernel.chain.splice(1); // someone ran iptables -F DOCKER-USER
    await firewall.reconcile();
    firewall.stop();
    expect(new Set(kernel.chain)).toEqual(new Set(before.filter((l) => l !== '-A DOCKER-USER -j RETURN')));
    expect(kernel.chain.at(-1)).toContain('-j DROP');
    const warning = lines.find((l) => l.level === 40 && String(l.msg).includes('missing'));
    expect(warning).toMatchObject({ rebuilt: true, missing: 2, restoring: 2 });
    expect(warning!.addresses).toEqual(expect.arrayContaining(['198.51.100.1', '198.51.100.2']));
    expect(firewall.stats.restored).toBe(1);
  });

  it('restores one address whose rules someone deleted, and stays quiet when nothing is missing', async () => {
    const { kernel, firewall, lines } = await setup();
    firewall.allow('198.51.100.1', 'a.test.', 3600);
    firewall.allow('198.51.100.2', 'b.test.', 3600);
    await firewall.settled();
    await firewall.reconcile();
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
    const scripts = kernel.scripts.length;

    for (let i = kernel.chain.length - 1; i >= 0; i--) if (kernel.chain[i]!.includes('198.51.100.2/32')) kernel.chain.splice(i, 1);
    await firewall.reconcile();
    firewall.stop();
    expect(kernel.scripts).toHaveLength(scripts + 1);
    expect(comments(kernel.chain, '198.51.100.2')).toHaveLength(1);
    expect(accepts(kernel.chain)).toHaveLength(4);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ rebuilt: false, missing: 1, addresses: ['198.51.100.2'] });
  });

  it('recovers when its idea of a rule no longer matches the kernel: the apply fails, it reads again, and the refresh lands', async () => {
    const { clock, kernel, firewall } = await setup();
    firewall.allow('198.51.100.1', 'a.test.', 0);
    await firewall.settled();
    for (let i = kernel.chain.length - 1; i >= 0; i--) if (kernel.chain[i]!.includes('198.51.100.1/32')) kernel.chain.splice(i, 1);
    clock.now += 100;
    expect(firewall.allow('198.51.100.1', 'a.test.', 0)).toBe('refreshed');
    await firewall.settled();
    firewall.stop();
    expect(firewall.stats.applyFailures).toBeGreaterThanOrEqual(1);
    expect(comments(kernel.chain, '198.51.100.1')).toEqual([`on-his-name exp=${T0 + 100 + 180} a.test.`]);
  });
});

describe('Firewall.whenInKernel', () => {
  it('resolves true once the kernel took the address, at once if it already has it, false if it is not wanted', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    await firewall.start();
    expect(await firewall.whenInKernel('198.51.100.1')).toBe(false);
    firewall.allow('198.51.100.1', 'a.test.');
    let inKernelWhenResolved: boolean | undefined;
    const waiting = firewall.whenInKernel('198.51.100.1').then((inKernel) => {
      inKernelWhenResolved = kernel.chain.some((l) => l.includes('198.51.100.1/32'));
      return inKernel;
    });
    expect(await waiting).toBe(true);
    expect(inKernelWhenResolved).toBe(true);
    expect(await firewall.whenInKernel('198.51.100.1')).toBe(true);
  });

  it('resolves false for an address evicted before the kernel took it, and waits through a failed apply', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log, maxIps: 1, retryDelayMs: { first: 1, max: 2 } });
    await firewall.start();
    firewall.allow('198.51.100.1', 'a.test.', 60);
    const first = firewall.whenInKernel('198.51.100.1');
    firewall.allow('198.51.100.2', 'b.test.', 3600);
    expect(await first).toBe(false);
    kernel.failNext(1);
    firewall.allow('198.51.100.3', 'c.test.', 7200);
    expect(await firewall.whenInKernel('198.51.100.3')).toBe(true);
    expect(firewall.stats.applyFailures).toBe(1);
  });
});

describe('Firewall, as the admin API sees it', () => {
  it('reports the time each address waited for the kernel, once per address', async () => {
    let clock = 1000;
    const kernel = fakeIptables();
    const slow: IptablesRunner = { list: kernel.runner.list, restore: async (s) => { clock += 7; await kernel.runner.restore(s); } };
    const onInKernel = vi.fn();
    const firewall = new Firewall({ runner: slow, layout, log: recordingLogger().log, now: () => clock, onInKernel });
    await firewall.start();
    firewall.allow('198.51.100.1');
    clock += 3;
    firewall.allow('198.51.100.2');
    await firewall.settled();
    expect(onInKernel.mock.calls).toEqual([[10, 1], [7, 1]]);
    firewall.allow('198.51.100.1');
    await firewall.settled();
    expect(onInKernel).toHaveBeenCalledTimes(2);
  });

  it('remembers the client that last asked for each address, and forgets it when the address closes', async () => {
    let now = 1_764_000_000;
    const firewall = new Firewall({ runner: fakeIptables().runner, layout, log: recordingLogger().log, clock: () => now, minTtl: 60, ttlGrace: 0 });
    await firewall.start();
    expect(firewall.allow('198.51.100.1', 'a.test.', 60, '192.0.2.10')).toBe('queued');
    firewall.allow('198.51.100.2', 'b.test.', 60);
    await firewall.settled();
    expect(firewall.clientOf('198.51.100.1')).toBe('192.0.2.10');
    expect(firewall.clientOf('198.51.100.2')).toBeUndefined();
    expect(firewall.allow('198.51.100.1', 'a.test.', 60, '192.0.2.11')).toBe('known');
    expect(firewall.clientOf('198.51.100.1')).toBe('192.0.2.11');
    expect(firewall.trackedCount).toBe(2);
    now += 61;
    expect(firewall.expire()).toBe(2);
    expect(firewall.clientOf('198.51.100.1')).toBeUndefined();
    expect(firewall.trackedCount).toBe(0);
    await firewall.settled();
    firewall.stop();
  });

  it('counts failed applies in a row, and clears the count once one lands', async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log, retryDelayMs: { first: 1, max: 1 } });
    await firewall.start();
    kernel.failNext(1_000);
    firewall.allow('198.51.100.1');
    for (let i = 0; i < 200 && firewall.stats.failingApplies < 3; i++) await new Promise((r) => setTimeout(r, 2));
    expect(firewall.stats.failingApplies).toBeGreaterThanOrEqual(3);
    kernel.failNext(0);
    await firewall.settled();
    expect(firewall.stats.failingApplies).toBe(0);
    expect(firewall.isAllowed('198.51.100.1')).toBe(true);
  });

  it("reads the kernel's counters through its backend", async () => {
    const kernel = fakeIptables();
    const firewall = new Firewall({ runner: kernel.runner, layout, log: recordingLogger().log });
    await firewall.start();
    firewall.allow('198.51.100.1');
    await firewall.settled();
    kernel.count('198.51.100.1/32', 2, 120);
    expect(await firewall.counters()).toEqual(new Map([['198.51.100.1', { packets: 4, bytes: 240 }]]));
  });
});
