/**
 * The real CLI, started with --interface in a lab shaped like a Docker host, fed by a real
 * unbound over dnstap. Producers flush about once a second, so a connection made right
 * after a lookup may need a SYN retransmit: connects allow a few seconds.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egress } from '../lab/egress.js';
import { BRIDGE, FOREIGN_RULE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const PATTERNS = ['allowed.test.', 'multi.test', 'ALIAS.test.', '**.deep.test'];

describe.skipIf(!canUseNamespaces())(`on-his-name --interface with unbound in namespaces${skipNote()}`, () => {
  let dir: string;
  let socket: string;
  let lab: FirewallLab;
  let daemon: CliProcess;
  const startDaemon = async () => {
    daemon = startCli(lab.host.name, ['--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--log-level', 'debug', ...PATTERNS]);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
  };
  const acceptRules = async () => (await lab.rules()).filter((l) => l.includes('-j ACCEPT'));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-cli-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket });
    await startDaemon();
    await lab.startDns();
    await daemon.waitFor((l) => l.msg === 'producer connected');
  }, 60_000);

  printOnFailure(async () => firewallReport(await lab.rules(), daemon?.output()));

  afterAll(async () => {
    await daemon?.stop();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the socket 0600, owned by the DNS server user', async () => {
    const info = await stat(socket);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(await unboundUid());
  });

  it('opens an allowed name: ACCEPT rules ahead of the DROP, and the connection succeeds', async () => {
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    const rules = await lab.rules();
    const dropAt = rules.findIndex((l) => l.includes('default-drop'));
    for (const port of [80, 443]) {
      const at = rules.findIndex((l) => l.includes('-d 198.51.100.10/32') && l.includes(`--dport ${port} `));
      expect(at).toBeGreaterThan(0);
      expect(at).toBeLessThan(dropAt);
    }
    expect(await lab.connect('198.51.100.10', 443)).toBe(true);
    expect(daemon.lines.find((l) => l.msg === 'allow' && l.name === 'allowed.test.')).toMatchObject({ client: '192.0.2.10', added: ['198.51.100.10'] });
  });

  it('opens every address of a multi-address name and the target of a CNAME chain', async () => {
    expect((await lab.resolve('multi.test')).sort()).toEqual(['198.51.100.11', '198.51.100.12']);
    expect(await lab.resolve('alias.test', { from: 1 })).toEqual(['198.51.100.13']);
    expect(await lab.connect('198.51.100.11', 80, { timeoutSeconds: 6 })).toBe(true);
    expect(await lab.connect('198.51.100.12', 443, { timeoutSeconds: 6 })).toBe(true);
    expect(await lab.connect('198.51.100.13', 80, { from: 1, timeoutSeconds: 6 })).toBe(true);
    expect(daemon.lines.find((l) => l.msg === 'allow' && l.name === 'alias.test.')).toMatchObject({ client: '192.0.2.11', ips: ['198.51.100.13'] });
  });

  it('keeps a denied name, a closed port and a never-resolved address blocked', async () => {
    expect(await lab.resolve('denied.test')).toEqual(['203.0.113.10']);
    await daemon.waitFor((l) => l.msg === 'deny' && l.name === 'denied.test.', 5_000);
    expect(await egress(lab, '203.0.113.10', 80)).toBe('dropped');
    expect(await egress(lab, '198.51.100.10', 8080)).toBe('dropped');
    expect(await egress(lab, '198.51.100.14', 80)).toBe('dropped');
    expect((await lab.rules()).join('\n')).not.toMatch(/203\.0\.113\.10|198\.51\.100\.14/);
  });

  it("leaves someone else's rule in DOCKER-USER, and the counters move", async () => {
    expect(await lab.rules()).toContain(FOREIGN_RULE);
    const counters = await lab.counters();
    const packets = (match: (rule: string) => boolean) => [...counters].filter(([rule]) => match(rule)).reduce((sum, [, n]) => sum + n, 0);
    expect(packets((r) => r.includes('-d 198.51.100.10/32') && r.includes('--dport 80 '))).toBeGreaterThan(0);
    expect(packets((r) => r.includes('default-drop'))).toBeGreaterThan(0);
    expect(packets((r) => r.includes('on-his-name established'))).toBeGreaterThan(0);
  });

  it('logs the time from a frame to its rules being in the kernel', () => {
    const latencies = daemon.lines.filter((l) => l.msg === 'rules in the kernel').map((l) => Number(l.latencyMs));
    expect(latencies.length).toBeGreaterThan(0);
    console.info(`frame → rules in the kernel (ms): ${latencies.join(', ')}`);
  });

  it("asks for no reconcile for its own rule changes (nft monitor names their author: our iptables-restore)", () => {
    expect(daemon.lines.filter((l) => l.msg === 'rules in the kernel').length).toBeGreaterThan(0);
    expect(daemon.lines.filter((l) => l.msg === 'the ruleset changed: reconciling')).toEqual([]);
  });

  it('stays closed while stopped, and a restart adopts its rules without adding any', async () => {
    const before = await lab.rules();
    expect(await daemon.stop()).toBe(0);
    expect(await lab.rules()).toEqual(before);
    expect(await egress(lab, '203.0.113.10', 80)).toBe('dropped');
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);

    await startDaemon();
    expect(daemon.lines.find((l) => l.msg === 'adopted existing rules in DOCKER-USER')).toMatchObject({ adopted: 4, rebuilt: false });
    await daemon.waitFor((l) => l.msg === 'producer connected', 15_000);
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    await daemon.waitFor((l) => l.msg === 'allow (already open)' && l.name === 'allowed.test.', 5_000);
    expect(await lab.rules()).toEqual(before);
    expect(await acceptRules()).toHaveLength(8);
  });

  it('restores its block as soon as someone flushes DOCKER-USER (nft monitor sees iptables-nft too), well before the 15 s reconcile', async () => {
    const before = (await acceptRules()).length;
    await lab.iptables('-F', 'DOCKER-USER');
    // Put back what the flush took from others (ours is the daemon's to restore).
    await lab.iptables(...FOREIGN_RULE.split(' '));
    await lab.iptables('-A', 'DOCKER-USER', '-j', 'RETURN');
    await daemon.waitFor((l) => String(l.msg).includes('our base rules were missing or damaged'), 5_000);
    expect(daemon.lines.find((l) => l.msg === 'the ruleset changed: reconciling')).toMatchObject({ change: expect.stringContaining('DOCKER-USER'), writerPid: expect.any(Number) });
    for (const end = Date.now() + 5_000; (await acceptRules()).length < before && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
    expect(await acceptRules()).toHaveLength(before);
    expect(await egress(lab, '203.0.113.10', 80)).toBe('dropped');
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
  });

  it('reset removes every rule it owns, says which, and leaves the rest', async () => {
    await daemon.stop();
    const result = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'reset']);
    expect(result.stdout).toMatch(/^removed 16 rule\(s\) and 4 chain\(s\) owned by on-his-name from iptables$/m);
    expect(result.stdout.split('\n').filter((l) => l.startsWith('removed: -A DOCKER-USER'))).toHaveLength(15);
    expect(result.stdout.split('\n').filter((l) => l.startsWith('removed: -A INPUT'))).toHaveLength(1);
    expect(result.stdout).toMatch(/^removed: chain ON-HIS-NAME-SOURCES \(\d+ rule\(s\)\)$/m);
    expect(result.stdout).toMatch(/^removed: chain ON-HIS-NAME-CLIENTS \(0 rule\(s\)\)$/m);
    expect(result.stdout).toMatch(/^removed: chain ON-HIS-NAME-RECORD \(3 rule\(s\)\)$/m);
    expect(result.stdout).toMatch(/^removed: ipset ohn-blocked-v4$/m);
    expect(await lab.rules()).toEqual(['-N DOCKER-USER', FOREIGN_RULE, '-A DOCKER-USER -j RETURN']);
    expect(await lab.iptables('-S')).not.toMatch(/on-his-name/i);
    expect(await lab.connect('203.0.113.10', 80)).toBe(true);
  });
});
