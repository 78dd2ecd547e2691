/**
 * IPv6 on the real ip6tables (nf_tables) in namespaces this suite creates and removes:
 * a "container" behind a bridge cannot reach an IPv6 "internet" host until the ip6tables
 * firewall opens its address, then only on the configured port; opening IPv4 opens no IPv6.
 *
 *   c6 (2001:db8:6::2) ─veth─ br6 [host ns, ip6tables DOCKER-USER] ─veth─ i6 (2001:db8:1::1, TCP 443 and 8443)
 */
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Firewall } from '../../src/firewall/firewall.js';
import { iptablesRunner } from '../../src/firewall/iptables.js';
import { IpsetBackend, destroyOwnedSet } from '../../src/firewall/ipset-backend.js';
import { execIpset } from '../../src/firewall/ipset-runner.js';
import { removeOwnedRules } from '../../src/firewall/reset.js';
import { recordingLogger } from '../support/log.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { testLayout } from '../support/layout.js';

const tag = process.pid;
const [host, container, internet] = [`ohn6-h-${tag}`, `ohn6-c-${tag}`, `ohn6-i-${tag}`];
const inNs = (ns: string, cmd: string, args: string[]) => execa('ip', ['netns', 'exec', ns, cmd, ...args]);
const SERVER = "for (const p of [443, 8443]) require('net').createServer((s) => s.end('ok')).listen(p, '::')";
const CLIENT = (port: number) =>
  `const s = require('net').connect({ host: '2001:db8:1::1', port: ${port}, timeout: 1500 }); ` +
  `s.on('data', () => process.exit(0)); s.on('timeout', () => process.exit(1)); s.on('error', () => process.exit(2));`;
const reaches = async (port: number) => (await inNs(container, 'node', ['-e', CLIENT(port)]).catch((e: { exitCode: number }) => e)).exitCode === 0;
const layout = testLayout('br6', [443], 6, { subnets: ['2001:db8:6::/64'], dns: [{ address: '2001:db8:6::1', port: 53 }] });

describe.skipIf(!canUseNamespaces())(`IPv6 firewall on real ip6tables in namespaces${skipNote()}`, () => {
  const runner6 = iptablesRunner({ iptables: 'ip6tables', restore: 'ip6tables-restore', prefix: ['ip', 'netns', 'exec', host] });
  const runner4 = iptablesRunner({ prefix: ['ip', 'netns', 'exec', host] });
  let server: ResultPromise | undefined;

  beforeAll(async () => {
    for (const ns of [host, container, internet]) await execa('ip', ['netns', 'add', ns]);
    const h = (...args: string[]) => inNs(host, 'ip', args);
    await h('link', 'add', 'br6', 'type', 'bridge');
    await h('link', 'add', 'c6h', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container);
    await h('link', 'add', 'i6h', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', internet);
    await h('link', 'set', 'c6h', 'master', 'br6');
    for (const link of ['br6', 'c6h', 'i6h', 'lo']) await h('link', 'set', link, 'up');
    await h('addr', 'add', '2001:db8:6::1/64', 'dev', 'br6', 'nodad');
    await h('addr', 'add', '2001:db8:1::2/64', 'dev', 'i6h', 'nodad');
    await inNs(host, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    for (const [ns, address, via] of [[container, '2001:db8:6::2/64', '2001:db8:6::1'], [internet, '2001:db8:1::1/64', '2001:db8:1::2']] as const) {
      await inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
      await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
      await inNs(ns, 'ip', ['addr', 'add', address, 'dev', 'eth0', 'nodad']);
      await inNs(ns, 'ip', ['-6', 'route', 'add', 'default', 'via', via]);
    }
    for (const binary of ['iptables', 'ip6tables']) {
      await inNs(host, binary, ['-N', 'DOCKER-USER']);
      await inNs(host, binary, ['-A', 'DOCKER-USER', '-j', 'RETURN']);
      await inNs(host, binary, ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    }
    server = execa('ip', ['netns', 'exec', internet, 'node', '-e', SERVER]);
    server.catch(() => undefined);
    for (let i = 0; i < 50 && !(await reaches(443)); i++) await new Promise((r) => setTimeout(r, 100));
  }, 30_000);
  afterAll(async () => {
    if (server?.pid) process.kill(server.pid);
    for (const ns of [host, container, internet]) await execa('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  it('reaches the IPv6 internet before the firewall starts (the lab works)', async () => {
    expect(await reaches(443)).toBe(true);
  });

  it('closes IPv6 egress, opens an address only on the configured ports, and IPv4 opens nothing over IPv6', async () => {
    const v4 = new Firewall({ runner: runner4, layout: testLayout('br6', [443]), log: recordingLogger().log });
    const v6 = new Firewall({ runner: runner6, layout, log: recordingLogger().log });
    await v4.start();
    await v6.start();
    expect(await reaches(443)).toBe(false);

    v4.allow('198.51.100.1', 'v4only.test.');
    await v4.settled();
    expect(await reaches(443)).toBe(false);

    expect(v6.allow('2001:db8:1::1', 'allowed.test.')).toBe('queued');
    await v6.settled();
    expect(await reaches(443)).toBe(true);
    expect(await reaches(8443)).toBe(false);

    const listed = (await inNs(host, 'ip6tables', ['-S', 'DOCKER-USER'])).stdout;
    expect(listed).toMatch(/^-A DOCKER-USER -d 2001:db8:1::1\/128 -i br6 -p tcp -m tcp --dport 443 -m comment --comment "on-his-name exp=\d+ allowed\.test\." -j ACCEPT$/m);
    const restarted = new Firewall({ runner: runner6, layout, log: recordingLogger().log });
    expect(await restarted.start()).toEqual({ adopted: 1, rebuilt: false });
  }, 30_000);

  it('reset removes our IPv6 rules and nothing else', async () => {
    const removed = await removeOwnedRules(runner6);
    expect(removed.map((r) => r.role).sort()).toEqual(['accept', 'audited', 'clients', 'drop', 'established', 'host-jump', 'record', 'same-network', 'source-check']);
    expect((await inNs(host, 'ip6tables', ['-S', 'DOCKER-USER'])).stdout.split('\n')).toEqual(['-N DOCKER-USER', '-A DOCKER-USER -j RETURN']);
  });

  it('--backend ipset does the same with the inet6 set on-his-name-v6, counted per element', async () => {
    const ipset = execIpset({ prefix: ['ip', 'netns', 'exec', host] });
    const v6 = new Firewall({ backend: new IpsetBackend({ iptables: runner6, ipset, layout }), log: recordingLogger().log });
    await v6.start();
    expect(await reaches(443)).toBe(false);

    expect(v6.allow('2001:db8:1::1', 'allowed.test.')).toBe('queued');
    await v6.settled();
    expect(await reaches(443)).toBe(true);
    expect(await reaches(8443)).toBe(false);
    const saved = (await inNs(host, 'ipset', ['list', '-o', 'save', 'on-his-name-v6'])).stdout;
    expect(saved).toMatch(/^create on-his-name-v6 hash:ip family inet6 /m);
    expect(saved).toMatch(/^add on-his-name-v6 2001:db8:1::1 timeout \d+ packets [1-9]\d* bytes \d+ comment "allowed\.test\."$/m);
    expect((await inNs(host, 'ip6tables', ['-S', 'DOCKER-USER'])).stdout).toMatch(/-m set --match-set on-his-name-v6 dst/);

    expect((await removeOwnedRules(runner6)).map((r) => r.role).sort()).toEqual(['audited', 'clients', 'drop', 'established', 'host-jump', 'record', 'same-network', 'set-accept', 'source-check']);
    expect(await destroyOwnedSet(ipset, 'on-his-name-v6')).toBe(true);
  });
});
