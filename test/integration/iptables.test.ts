/**
 * The firewall against the real iptables (nf_tables) in a namespace this suite creates
 * and removes: the planner's text must be what the kernel takes, and reading it back
 * must find exactly our rules.
 */
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplyError } from '../../src/util/errors.js';
import { Firewall } from '../../src/firewall/firewall.js';
import { iptablesRunner, type IptablesRunner } from '../../src/firewall/iptables.js';
import { removeOwned } from '../../src/firewall/reset.js';
import { recordingLogger } from '../support/log.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { testLayout } from '../support/layout.js';

const ns = `ohn-ipt-${process.pid}`;
const inNs = (cmd: string, args: string[]) => execa('ip', ['netns', 'exec', ns, cmd, ...args]);
const layout = testLayout('br-test');
const foreign = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';

describe.skipIf(!canUseNamespaces())(`firewall on real iptables in a namespace${skipNote()}`, () => {
  let runner: IptablesRunner;
  const listing = async () => (await inNs('iptables', ['-S', 'DOCKER-USER'])).stdout.split('\n');

  beforeAll(async () => {
    await execa('ip', ['netns', 'add', ns]);
    await inNs('iptables', ['-N', 'DOCKER-USER']);
    await inNs('iptables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
    await inNs('iptables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    await inNs('iptables', ['-I', 'DOCKER-USER', '-d', '203.0.113.99/32', '-m', 'comment', '--comment', 'someone-else', '-j', 'REJECT']);
    runner = iptablesRunner({ prefix: ['ip', 'netns', 'exec', ns] });
  });
  afterAll(async () => {
    await execa('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  it('installs its block ahead of the RETURN, opens a burst in one restore, and adopts it after a restart', async () => {
    const firewall = new Firewall({ runner, layout, log: recordingLogger().log });
    expect(await firewall.start()).toEqual({ adopted: 0, rebuilt: true });
    for (let i = 1; i <= 200; i++) firewall.allow(`198.51.100.${i}`, 'burst.test.');
    await firewall.settled();
    expect(firewall.stats.applies).toBe(1);

    const rules = await listing();
    expect(rules.filter((l) => l.includes('-j ACCEPT'))).toHaveLength(400);
    const dropAt = rules.findIndex((l) => l.includes('default-drop'));
    expect(rules.findIndex((l) => l.includes('-j ACCEPT'))).toBeLessThan(dropAt);
    expect(dropAt).toBeLessThan(rules.indexOf('-A DOCKER-USER -j RETURN'));
    expect(rules).toContain(foreign);

    const restarted = new Firewall({ runner, layout, log: recordingLogger().log });
    expect(await restarted.start()).toEqual({ adopted: 200, rebuilt: false });
    expect(await listing()).toEqual(rules);
  });

  it('repairs a block someone reordered, keeping its addresses and their rules only once', async () => {
    await inNs('iptables', ['-D', 'DOCKER-USER', '-j', 'RETURN']);
    await inNs('iptables', ['-I', 'DOCKER-USER', '1', '-j', 'RETURN']);
    const firewall = new Firewall({ runner, layout, log: recordingLogger().log });
    expect(await firewall.start()).toEqual({ adopted: 200, rebuilt: true });
    const rules = await listing();
    expect(rules.filter((l) => l.includes('-j ACCEPT'))).toHaveLength(400);
    expect(rules.findIndex((l) => l.includes('default-drop'))).toBeLessThan(rules.indexOf('-A DOCKER-USER -j RETURN'));
    expect(rules).toContain(foreign);
  });

  it('reset removes every rule it owns, its chains and its INPUT jump, and nothing else', async () => {
    const removed = await removeOwned(runner);
    expect(removed.rules).toHaveLength(400 + 7 + 1);
    expect(removed.chains.map((c) => c.chain).sort()).toEqual(['ON-HIS-NAME-CLIENTS', 'ON-HIS-NAME-INPUT', 'ON-HIS-NAME-RECORD', 'ON-HIS-NAME-SOURCES']);
    expect(await listing()).toEqual(['-N DOCKER-USER', '-A DOCKER-USER -j RETURN', foreign]);
    expect((await inNs('iptables', ['-S'])).stdout).not.toMatch(/on-his-name|ON-HIS-NAME/i);
  });

  it('says clearly when DOCKER-USER does not exist', async () => {
    await inNs('iptables', ['-F', 'FORWARD']);
    await inNs('iptables', ['-F', 'DOCKER-USER']);
    await inNs('iptables', ['-X', 'DOCKER-USER']);
    const firewall = new Firewall({ runner, layout, log: recordingLogger().log });
    await expect(firewall.start()).rejects.toThrow(/DOCKER-USER chain does not exist: start Docker/);
  });
});

describe.skipIf(!canUseNamespaces())(`a long-lived iptables-restore on real iptables${skipNote()}`, () => {
  const pns = `ohn-iptp-${process.pid}`;
  const inPns = (cmd: string, args: string[]) => execa('ip', ['netns', 'exec', pns, cmd, ...args]);
  let runner: IptablesRunner;

  beforeAll(async () => {
    await execa('ip', ['netns', 'add', pns]);
    await inPns('iptables', ['-N', 'DOCKER-USER']);
    await inPns('iptables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    runner = iptablesRunner({ prefix: ['ip', 'netns', 'exec', pns], persistent: true });
  });
  afterAll(async () => {
    runner?.close?.();
    await execa('ip', ['netns', 'del', pns]).catch(() => undefined);
  });

  const accept = (address: string) => `*filter\n-A DOCKER-USER -d ${address}/32 -j ACCEPT\nCOMMIT\n`;
  /** Pids of the iptables-restore processes in this suite's namespace. */
  const processes = async () => {
    const pids = (await execa('ip', ['netns', 'pids', pns])).stdout.split('\n').filter(Boolean);
    const names = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')));
    return pids.filter((_, i) => names[i]!.startsWith('iptables'));
  };
  let first: string[] = [];

  it('has each batch in the kernel when it resolves, all through one process', async () => {
    for (let i = 1; i <= 5; i++) {
      await runner.restore(accept(`198.51.100.${i}`));
      expect((await inPns('iptables', ['-S', 'DOCKER-USER'])).stdout).toContain(`-d 198.51.100.${i}/32`);
      if (i === 1) first = await processes();
      expect(await processes()).toEqual(first);
    }
    expect(first).toHaveLength(1);
  });

  it('fails a batch the kernel refuses with its error, and serves the next batch with a new process', async () => {
    const refused = runner.restore('*filter\n-D DOCKER-USER -d 203.0.113.1/32 -j ACCEPT\nCOMMIT\n');
    await expect(refused).rejects.toThrow(ApplyError);
    await expect(refused).rejects.toThrow(/iptables-restore failed: .*Bad rule/);
    await runner.restore(accept('198.51.100.6'));
    expect((await inPns('iptables', ['-S', 'DOCKER-USER'])).stdout).toContain('-d 198.51.100.6/32');
    const second = await processes();
    expect(second).toHaveLength(1);
    expect(second).not.toEqual(first);
  });

  it('drives the Firewall: a burst opened through the long-lived process', async () => {
    const firewall = new Firewall({ runner, layout: testLayout('br-long', [443]), log: recordingLogger().log });
    await firewall.start();
    for (let i = 1; i <= 50; i++) firewall.allow(`203.0.113.${i}`, 'long.test.');
    await firewall.settled();
    expect(firewall.allowedCount).toBe(50);
    expect((await inPns('iptables', ['-S', 'DOCKER-USER'])).stdout.split('\n').filter((l) => l.includes('-i br-long') && l.includes('-j ACCEPT'))).toHaveLength(50);
  });
});
