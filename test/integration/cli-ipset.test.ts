/**
 * The real CLI with --backend ipset, fed by unbound over dnstap: allowed addresses land in
 * the on-his-name-v4 set (with the name and an expiry), matched by one rule; `reset`
 * removes the rule and the set.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egress } from '../lab/egress.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const hasIpset = () => execa('sh', ['-c', 'command -v ipset'], { reject: false }).then((r) => r.exitCode === 0);

describe.skipIf(!canUseNamespaces())(`on-his-name --backend ipset${skipNote()}`, () => {
  let dir: string;
  let lab: FirewallLab;
  let daemon: CliProcess;
  const ipsetList = () => lab.hostExec('ipset', ['list', 'on-his-name-v4']);

  beforeAll(async () => {
    if (!(await hasIpset())) throw new Error('ipset not found: apt-get install ipset (CI installs it)');
    dir = await mkdtemp(join(tmpdir(), 'ohn-cli-ipset-'));
    await chmod(dir, 0o755);
    const socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket });
    daemon = startCli(lab.host.name, ['--backend', 'ipset', '--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--log-level', 'debug', 'allowed.test.']);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
    await lab.startDns();
    await daemon.waitFor((l) => l.msg === 'producer connected');
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('matches one set rule ahead of the DROP instead of per-address rules', async () => {
    const rules = (await lab.rules()).filter((l) => l.includes('on-his-name'));
    expect(rules.some((l) => l.includes('--match-set on-his-name-v4 dst') && l.includes('-j ACCEPT'))).toBe(true);
    expect(rules.some((l) => /-d \S+\/32/.test(l))).toBe(false);
  });

  it('opens an allowed name through the set, with its name and a timeout; a denied one stays closed', async () => {
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    const list = await ipsetList();
    expect(list).toMatch(/198\.51\.100\.10 timeout \d+ packets [1-9]\d* bytes \d+ comment "allowed\.test\."/);
    expect(await lab.resolve('denied.test')).toEqual(['203.0.113.10']);
    await daemon.waitFor((l) => l.msg === 'deny' && l.name === 'denied.test.');
    expect(await egress(lab, '203.0.113.10', 80)).toBe('dropped');
    expect(await ipsetList()).not.toContain('203.0.113.10'); // read after the decision, not before the lookup
  });

  it('reset removes the set rule and destroys the set', async () => {
    await daemon.stop();
    const reset = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'reset', '--interface', BRIDGE], { reject: false });
    expect(reset.exitCode, String(reset.stderr)).toBe(0);
    expect(String(reset.stdout)).toContain('on-his-name-v4');
    expect((await lab.rules()).filter((l) => l.includes('on-his-name'))).toEqual([]);
    expect((await execa('ip', ['netns', 'exec', lab.host.name, 'ipset', 'list', 'on-his-name-v4'], { reject: false })).exitCode).not.toBe(0);
  });
});
