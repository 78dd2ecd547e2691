/**
 * The ipset backend against the real kernel: ipset and iptables (nf_tables, xt `set`
 * match) in the firewall lab's namespaces, with real TCP connections from a "container"
 * through the bridge to the lab's internet. One element is given a 2-second lifetime to
 * see the kernel expire it by itself.
 */
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApplyError, ConfigError } from '../../src/util/errors.js';
import { IpsetBackend, destroyOwnedSet } from '../../src/firewall/ipset-backend.js';
import { SET_V4, parseSave } from '../../src/firewall/ipset.js';
import { execIpset, persistentIpset, type IpsetRunner } from '../../src/firewall/ipset-runner.js';
import { iptablesRunner, type IptablesRunner } from '../../src/firewall/iptables.js';
import { removeOwnedRules } from '../../src/firewall/reset.js';
import { BRIDGE, FOREIGN_RULE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { testLayout } from '../support/layout.js';

const layout = testLayout(BRIDGE);
const ALLOWED = '198.51.100.10';
const SHORT_LIVED = '198.51.100.11';
const OTHER = '198.51.100.12';
const QUICK = { timeoutMs: 1000 };
const now = () => Date.now() / 1000;
const hasIpset = (await execa('sh', ['-c', 'command -v ipset'], { reject: false })).exitCode === 0;

describe.skipIf(!canUseNamespaces() || !hasIpset)(
  `ipset backend on the real kernel in namespaces${skipNote()}${hasIpset ? '' : ' (skipped: apt-get install ipset)'}`,
  () => {
    let dir: string;
    let lab: FirewallLab;
    let iptables: IptablesRunner;
    let ipset: IpsetRunner;
    let persistent: IpsetRunner;
    const saved = async () => parseSave((await ipset.save(SET_V4)) ?? '', SET_V4);
    const element = async (address: string) => (await saved())?.elements.find((e) => e.address === address);
    const newBackend = (runner: IpsetRunner = ipset) => new IpsetBackend({ iptables, ipset: runner, layout, maxElements: 1024 });

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ohn-ipset-'));
      lab = await createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock') });
      const prefix = ['ip', 'netns', 'exec', lab.host.name];
      iptables = iptablesRunner({ prefix });
      ipset = execIpset({ prefix });
      persistent = persistentIpset({ prefix });
      await lab.hostExec('ipset', ['create', 'someone-else', 'hash:ip']);
    }, 60_000);

    afterEach((context) => {
      if (context.task.result?.state === 'fail') {
        return Promise.all([lab.rules(), ipset.save(SET_V4)]).then(([rules, set]) => console.error(`DOCKER-USER:\n${rules.join('\n')}\n\n${set}`));
      }
    });

    afterAll(async () => {
      persistent?.close();
      await lab?.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('installs the set and its one rule ahead of the RETURN; nothing is reachable yet', async () => {
      expect(await newBackend().sync()).toEqual({ adopted: [], rebuilt: true, bypasses: [] });
      const rules = await lab.rules();
      expect(rules.filter((l) => l.includes('on-his-name'))).toHaveLength(8);
      expect(rules.findIndex((l) => l.includes('--match-set on-his-name-v4 dst'))).toBeLessThan(rules.indexOf('-A DOCKER-USER -j RETURN'));
      expect(rules).toContain(FOREIGN_RULE);
      expect((await saved())?.header).toMatchObject({ type: 'hash:ip', maxelem: 1024, timeout: 0, counters: true, comment: true });
      expect(await lab.connect(ALLOWED, 80, QUICK)).toBe(false);
    });

    it('opens an address once apply put it in, on the configured ports only, and counts its connections', async () => {
      const backend = newBackend();
      await backend.apply([{ address: ALLOWED, name: 'allowed.test.', expiresAt: now() + 300 }], []);
      expect(await lab.connect(ALLOWED, 80)).toBe(true);
      expect(await lab.connect(ALLOWED, 443)).toBe(true);
      expect(await lab.connect(ALLOWED, 8080, QUICK)).toBe(false);
      expect(await lab.connect(OTHER, 80, QUICK)).toBe(false);
      const counted = await element(ALLOWED);
      expect(counted).toMatchObject({ comment: 'allowed.test.', packets: 2 }); // one SYN per connection
      expect(counted?.timeout).toBeGreaterThan(290);
    });

    it('lets the kernel expire an element by itself, closing the address', async () => {
      await newBackend().apply([{ address: SHORT_LIVED, name: 'brief.test.', expiresAt: now() + 2 }], []);
      expect(await lab.connect(SHORT_LIVED, 80)).toBe(true);
      const deadline = Date.now() + 5000;
      while ((await element(SHORT_LIVED)) && Date.now() < deadline) await sleep(200);
      expect(await element(SHORT_LIVED)).toBeUndefined();
      expect(await lab.connect(SHORT_LIVED, 80, QUICK)).toBe(false);
      expect(await lab.connect(ALLOWED, 80)).toBe(true);
    });

    it('adopts elements with their remaining lifetime after a restart, and changes nothing', async () => {
      const before = await lab.rules();
      const { adopted, rebuilt } = await newBackend().sync();
      expect(rebuilt).toBe(false);
      expect(adopted).toHaveLength(1);
      expect(adopted[0]).toMatchObject({ address: ALLOWED, name: 'allowed.test.' });
      expect(adopted[0]!.expiresAt! - now()).toBeGreaterThan(280);
      expect(adopted[0]!.expiresAt! - now()).toBeLessThanOrEqual(300);
      expect(await lab.rules()).toEqual(before);
      expect((await element(ALLOWED))?.packets).toBeGreaterThanOrEqual(3);
    });

    it('removes an address, and a refresh keeps its counters', async () => {
      const backend = newBackend();
      await backend.apply([{ address: OTHER, expiresAt: now() + 60 }], []);
      await backend.apply([{ address: ALLOWED, name: 'allowed.test.', expiresAt: now() + 600 }], [{ address: OTHER }]);
      expect(await element(OTHER)).toBeUndefined();
      expect(await element(ALLOWED)).toMatchObject({ packets: 3 });
      expect((await element(ALLOWED))?.timeout).toBeGreaterThan(590);
      expect(await lab.connect(OTHER, 80, QUICK)).toBe(false);
    });

    it('applies through one long-lived ipset process, which reports errors and keeps serving', async () => {
      const backend = newBackend(persistent);
      await backend.apply([{ address: OTHER, name: 'persistent.test.', expiresAt: now() + 60 }], []);
      expect(await element(OTHER)).toMatchObject({ comment: 'persistent.test.' });
      expect(await lab.connect(OTHER, 443)).toBe(true);
      await expect(persistent.restore('add no-such-set 198.51.100.13\n')).rejects.toThrow(ApplyError);
      await expect(persistent.restore('add no-such-set 198.51.100.13\n')).rejects.toThrow(/does not exist/);
      await backend.apply([], [{ address: OTHER }]);
      expect(await element(OTHER)).toBeUndefined();
    });

    it('reset removes the rule and the set; rules and sets of others survive', async () => {
      expect((await removeOwnedRules(iptables)).map((r) => r.role)).toEqual(['host-jump', 'source-check', 'established', 'same-network', 'clients', 'audited', 'set-accept', 'record', 'drop']);
      expect(await destroyOwnedSet(ipset)).toBe(true);
      expect(await lab.rules()).toEqual(['-N DOCKER-USER', FOREIGN_RULE, '-A DOCKER-USER -j RETURN']);
      expect(await ipset.save(SET_V4)).toBeUndefined();
      expect(await ipset.save('someone-else')).toContain('create someone-else hash:ip');
    });

    it('refuses a set of the same name with another type, naming on-his-name reset', async () => {
      await lab.hostExec('ipset', ['create', SET_V4, 'hash:ip,port']);
      await expect(newBackend().sync()).rejects.toThrow(ConfigError);
      await expect(newBackend().sync()).rejects.toThrow(/exists but cannot be used.*"on-his-name reset"/);
      expect((await lab.rules()).some((l) => l.includes('on-his-name'))).toBe(false);
      await destroyOwnedSet(ipset);
    });
  },
);
