/**
 * The namespace lab itself: DNS from the containers, routing to the "internet", DOCKER-USER
 * in the path, dnstap out of unbound, and a close() that leaves nothing behind.
 * Needs root and network namespaces; skipped (with a note) otherwise.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canUseNamespaces } from '../support/root.js';
import { startDnstapSink, wireName, type SinkFrame } from './dnstap-sink.js';
import { FOREIGN_RULE, createFirewallLab, type FirewallLab } from './firewall-lab.js';

if (!canUseNamespaces()) console.warn('test/lab: skipped, needs root and network namespaces (run as root on Linux)');

describe.skipIf(!canUseNamespaces())('the firewall lab', () => {
  let lab: FirewallLab;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-lab-test-'));
    await chmod(dir, 0o755); // unbound, as user unbound, connects to the socket in here
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock'), startDns: true });
  });

  afterAll(async () => {
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers every test name from the gateway, to both containers', async () => {
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect((await lab.resolve('multi.test')).sort()).toEqual(['198.51.100.11', '198.51.100.12']);
    expect(await lab.resolve('alias.test', { from: 1 })).toEqual(['198.51.100.13']);
    expect(await lab.resolve('v6.test')).toEqual(['198.51.100.14']);
    expect(await lab.resolve('v6.test', { type: 'AAAA' })).toEqual(['2001:db8::10']);
    expect(await lab.resolve('denied.test', { from: 1 })).toEqual(['203.0.113.10']);
    expect(await lab.resolve('nx.test')).toEqual([]);
  });

  it('starts with the DOCKER-USER chain Docker makes, plus a foreign rule', async () => {
    expect(await lab.listRules()).toEqual(['-N DOCKER-USER', FOREIGN_RULE, '-A DOCKER-USER -j RETURN']);
    expect(lab.foreignRule).toBe(FOREIGN_RULE);
    expect(await lab.hostExec('iptables', ['-S', 'FORWARD'])).toContain('-A FORWARD -j DOCKER-USER');
  });

  it('routes containers to every internet address while DOCKER-USER only returns', async () => {
    expect(await lab.request('198.51.100.10', 80)).toBe('hello from 198.51.100.10:80');
    expect(await lab.request('203.0.113.10', 443, { from: 1 })).toBe('hello from 203.0.113.10:443');
    expect(await lab.connect('198.51.100.14', 8080)).toBe(true);
  });

  it('blocks a container once DOCKER-USER drops traffic from the bridge', async () => {
    const drop = ['-i', lab.bridge, '-j', 'DROP'];
    await lab.iptables('-I', 'DOCKER-USER', ...drop);
    try {
      expect(await lab.connect('198.51.100.10', 80, { timeoutMs: 1000 })).toBe(false);
      expect((await lab.counters()).get(`-A DOCKER-USER -i ${lab.bridge} -j DROP`)).toBeGreaterThan(0);
    } finally {
      await lab.iptables('-D', 'DOCKER-USER', ...drop);
    }
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
  });

  it('sends dnstap to a reader that appears after unbound started, backlog included', async () => {
    const fromContainer = (index: number) => Buffer.from(lab.containerAddresses[index]!.split('.').map(Number));
    const asked = (name: string, index: number) => (f: SinkFrame) => f.payload.includes(wireName(name)) && f.payload.includes(fromContainer(index));
    // No reader yet: unbound keeps this in its queue and retries the socket (at most 1 s apart).
    await lab.resolve('multi.test', { from: 0 });
    const sink = await startDnstapSink(lab.dnstapSocket, { uid: lab.dns()!.uid });
    try {
      await lab.resolve('allowed.test', { from: 1 });
      // unbound flushes on a 1 s timer, so allow for reconnect + flush.
      await sink.waitFor(asked('allowed.test', 1), 5_000);
      await sink.waitFor(asked('multi.test', 0), 1_000);
      expect(sink.controls.slice(0, 2)).toEqual(['1:READY', '1:START']);
    } finally {
      await sink.close();
    }
  });

  it('close() kills every process it started and removes every namespace', async () => {
    const namespaces = [lab.host, lab.internet, ...lab.containers];
    const pids = (await Promise.all(namespaces.map((ns) => ns.pids()))).flat();
    expect(pids.length).toBeGreaterThanOrEqual(2); // unbound and the TCP servers at least

    await lab.close();
    await lab.close(); // idempotent

    const left = String(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout);
    for (const ns of namespaces) expect(left).not.toMatch(new RegExp(`^${ns.name}\\b`, 'm'));
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
