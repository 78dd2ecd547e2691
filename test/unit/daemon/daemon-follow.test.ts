/**
 * The daemon follows its Docker network: re-created on another bridge, it moves the
 * firewall (IPv4 and IPv6) and the guard; gone, it waits and says so once; Docker
 * restarting, it reconciles. A fake Docker and fake kernels, in process, and a FakeClock
 * for following Docker: a wait or a retry happens when a test moves it, never by itself.
 */
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { ConfigError } from '../../../src/util/errors.js';
import { parseOwnedRule } from '../../../src/firewall/rules.js';
import { answerData, answerTo, askUdp, query, startFakeUpstream } from '../../support/dns.js';
import { FakeClock } from '../../support/clock.js';
import { clientResponse } from '../../support/dnstap.js';
import { fakeDocker, networkInspect } from '../../support/docker.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer } from '../../support/socket.js';

let dir: string;
let daemon: Daemon | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-follow-'));
});
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await rm(dir, { recursive: true, force: true });
});

const OLD = 'br-aaaaaaaaaaaa';
const NEW = 'br-bbbbbbbbbbbb';
const until = async (predicate: () => boolean, what = 'condition') => {
  for (let i = 0; i < 1000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 3));
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
};
async function freeUdpPort(host: string): Promise<number> {
  const probe = createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, host, () => resolve()));
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
/** Nothing holds HOST:PORT for UDP: we can bind it ourselves. */
async function udpPortIsFree(host: string, port: number): Promise<boolean> {
  const probe = createSocket('udp4');
  const bound = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return bound;
}
const bridgesIn = (chain: readonly string[]) => [...new Set(chain.map(parseOwnedRule).flatMap((r) => (r ? [r.bridge] : [])))].sort();
const roles = (chain: readonly string[], bridge: string) => chain.map(parseOwnedRule).filter((r) => r?.bridge === bridge).map((r) => (r!.role === 'accept' ? `${r!.address}:${r!.port}` : r!.role));

async function start(args: string[] = [], docker = fakeDocker(networkInspect('aaaaaaaaaaaa', '172.18.0.0/16', { EnableIPv6: true, IPAM: { Config: [{ Subnet: '172.18.0.0/16' }, { Subnet: 'fd00:18::/64' }] } }))) {
  const v4 = fakeIptables();
  const v6 = fakeIptables();
  const recorder = recordingLogger();
  const clock = new FakeClock();
  const connected = docker.nextConnection();
  const config = parseConfig(['--listen', join(dir, 'dnstap.sock'), ...args, 'allowed.test.'], {});
  daemon = await startDaemon(config, { runner: v4.runner, runner6: v6.runner, docker: () => docker.client, log: recorder.log, clock });
  await connected;
  await daemon.follower!.idle();
  return { docker, v4, v6, clock, ...recorder };
}

async function answer(...records: Array<{ type: 'A' | 'AAAA'; data: string }>) {
  const producer = await connectProducer(join(dir, 'dnstap.sock'));
  await producer.write(bidirectionalStream([clientResponse('172.18.0.2', 'allowed.test', records.map((r) => ({ ...r, name: 'allowed.test', ttl: 60 })))]));
  await producer.closed;
  await daemon!.firewall.settled();
  await daemon!.firewall6?.settled();
}

describe('the daemon follows its Docker network', () => {
  it('re-created on a new bridge: moves IPv4 and IPv6 rules with every open address, old bridge last, and refuses the new subnet', async () => {
    const { docker, v4, v6, lines } = await start();
    await answer({ type: 'A', data: '198.51.100.10' }, { type: 'AAAA', data: '2001:db8::10' });
    expect(bridgesIn(v4.chain)).toEqual([OLD]);

    docker.setNetwork(undefined);
    docker.emit('network', 'destroy', 'aaaaaaaaaaaa'.padEnd(64, '0'));
    await until(() => daemon!.follower!.gone, 'the network to be gone');
    expect(lines.filter((l) => l.msg === 'network on-his-name is gone; waiting for it: docker network create on-his-name')).toHaveLength(1);
    expect(bridgesIn(v4.chain)).toEqual([OLD]); // kept until the new bridge exists

    const v4From = v4.states.length;
    const v6From = v6.states.length;
    docker.setNetwork(networkInspect('bbbbbbbbbbbb', '203.0.113.0/24', { EnableIPv6: true, IPAM: { Config: [{ Subnet: '203.0.113.0/24' }, { Subnet: 'fd00:19::/64' }] } }));
    docker.emit('network', 'create', 'bbbbbbbbbbbb'.padEnd(64, '0'));
    await until(() => daemon!.bridge === NEW, 'the move');
    await daemon!.follower!.idle();

    expect(bridgesIn(v4.chain)).toEqual([NEW]);
    expect(roles(v4.chain, NEW)).toEqual(['source-check', 'established', 'same-network', 'clients', 'audited', '198.51.100.10:80', '198.51.100.10:443', 'record', 'drop']);
    expect(bridgesIn(v6.chain)).toEqual([NEW]);
    expect(roles(v6.chain, NEW)).toEqual(['source-check', 'established', 'same-network', 'clients', 'audited', '2001:db8::10:80', '2001:db8::10:443', 'record', 'drop']);
    // Every state in between had a whole block for one bridge or the other.
    for (const state of [...v4.states.slice(v4From - 1), ...v6.states.slice(v6From - 1)]) {
      const present = bridgesIn(state);
      expect(present.length).toBeGreaterThan(0);
      for (const bridge of present) expect(roles(state, bridge).at(-1)).toBe('drop');
    }
    expect(lines.filter((l) => String(l.msg).startsWith('moved our rules to the new bridge')).map((l) => [l.from, l.to])).toEqual([[OLD, NEW], [OLD, NEW]]);

    // The new network's own subnet is refused now; new addresses open on the new bridge.
    await answer({ type: 'A', data: '203.0.113.7' }, { type: 'A', data: '198.51.100.11' });
    expect(v4.chain.join('\n')).not.toContain('203.0.113.7');
    expect(roles(v4.chain, NEW)).toContain('198.51.100.11:443');
    expect(lines.find((l) => l.address === '203.0.113.7')?.why).toMatch(/own subnet/);
  });

  it('with a fixed bridge name, a re-created network is filtered by the rules already there: nothing moves, nothing is rewritten', async () => {
    const named = (id: string) => networkInspect(id, '172.18.0.0/16', { Options: { 'com.docker.network.bridge.name': 'ohn0' } });
    const { docker, v4 } = await start([], fakeDocker(named('aaaaaaaaaaaa')));
    await answer({ type: 'A', data: '198.51.100.10' });
    const before = [...v4.chain];
    const restores = v4.scripts.length;

    docker.setNetwork(undefined);
    docker.emit('network', 'destroy', 'aaaaaaaaaaaa'.padEnd(64, '0'));
    await until(() => daemon!.follower!.gone, 'the network to be gone');
    docker.setNetwork(named('bbbbbbbbbbbb'));
    docker.emit('network', 'create', 'bbbbbbbbbbbb'.padEnd(64, '0'));
    await until(() => daemon!.follower!.network.id.startsWith('bbbbbbbbbbbb'), 'the new network to be seen');
    await daemon!.follower!.idle();

    expect(daemon!.bridge).toBe('ohn0');
    expect(v4.chain).toEqual(before);
    expect(v4.scripts.length).toBe(restores);
  });

  it('reconciles when Docker comes back after a restart, restoring what its start took away', async () => {
    const { docker, v4, clock } = await start();
    await answer({ type: 'A', data: '198.51.100.10' });
    docker.stop(true);
    v4.chain.splice(1, v4.chain.length - 1, '-A DOCKER-USER -j RETURN'); // as if the chain was re-created
    for (let i = 0; i < 3; i++) {
      await clock.nextTimer(); // Docker refuses: the follower waits to retry
      await clock.runNext();
    }
    expect(roles(v4.chain, OLD)).toEqual([]); // nothing to reconcile with while Docker is away
    const back = docker.nextConnection();
    docker.up();
    await clock.runNext();
    await back;
    await until(() => roles(v4.chain, OLD).includes('198.51.100.10:80'), 'the reconcile');
    const restored = roles(v4.chain, OLD);
    expect([...restored.slice(0, 5), ...restored.slice(-2)]).toEqual(['source-check', 'established', 'same-network', 'clients', 'audited', 'record', 'drop']);
    expect(restored.slice(5, -2).sort()).toEqual(['198.51.100.10:443', '198.51.100.10:80']);
  });

  it('exits with the fix when the network is missing at start, and waits for it with --wait-for-network', async () => {
    const missing = fakeDocker(undefined);
    const config = parseConfig(['--listen', join(dir, 'dnstap.sock'), 'allowed.test.'], {});
    const deps = { runner: fakeIptables().runner, docker: () => missing.client, log: recordingLogger().log };
    await expect(startDaemon(config, deps)).rejects.toThrow(new ConfigError('Docker network "on-his-name" not found: create it with "docker network create on-his-name"'));

    const later = fakeDocker(undefined);
    const v4 = fakeIptables();
    const { log, lines } = recordingLogger();
    const clock = new FakeClock();
    const starting = startDaemon(parseConfig(['--wait-for-network', '--listen', join(dir, 'dnstap.sock'), 'allowed.test.'], {}), { runner: v4.runner, docker: () => later.client, log, clock });
    await until(() => lines.some((l) => String(l.msg).startsWith('waiting for network on-his-name')), 'the waiting line');
    expect(v4.scripts).toEqual([]);
    await clock.advance(60_000); // a minute of polls that find no network
    expect(later.lookups).toBeGreaterThanOrEqual(60);
    expect(v4.scripts).toEqual([]); // nothing filtered, nothing started, meanwhile
    later.setNetwork(networkInspect('cccccccccccc'));
    await clock.advance(1_000); // the next poll finds it
    daemon = await starting;
    expect(daemon.bridge).toBe('br-cccccccccccc');
    expect(roles(v4.chain, 'br-cccccccccccc')).toEqual(['source-check', 'established', 'same-network', 'clients', 'audited', 'record', 'drop']);
  });

  it('inline mode on the gateway: the DNS proxy moves to a re-created network\'s new gateway, after the firewall, and keeps counting', async () => {
    // Loopback's 127/8 stands in for the two gateways: the proxy really binds each.
    const port = await freeUdpPort('127.0.0.2');
    const upstream = await startFakeUpstream((q) => answerTo(q, [{ type: 'A', name: 'allowed.test', ttl: 60, data: '198.51.100.10' }]));
    const gatewayAt = (id: string, gateway: string) => networkInspect(id, '172.18.0.0/16', { IPAM: { Config: [{ Subnet: '172.18.0.0/16', Gateway: gateway }] } });
    try {
      const { docker, v4, lines } = await start(['--dns-listen', `gateway:${port}`, '--dns-upstream', `127.0.0.1:${upstream.port}`], fakeDocker(gatewayAt('aaaaaaaaaaaa', '127.0.0.2')));
      expect(answerData(await askUdp({ host: '127.0.0.2', port }, query('allowed.test')))).toEqual(['198.51.100.10']);

      docker.setNetwork(gatewayAt('bbbbbbbbbbbb', '127.0.0.3'));
      docker.emit('network', 'create', 'bbbbbbbbbbbb'.padEnd(64, '0'));
      await until(() => daemon!.dns!.proxy.address.host === '127.0.0.3', 'the proxy to move');
      expect(bridgesIn(v4.chain)).toEqual([NEW]);
      const moved = lines.findIndex((l) => String(l.msg).startsWith('moved our rules to the new bridge'));
      const answering = lines.findIndex((l) => l.msg === "answering DNS on the network's new gateway 127.0.0.3");
      expect(moved).toBeGreaterThanOrEqual(0);
      expect(answering).toBeGreaterThan(moved);
      expect(lines.filter((l) => String(l.msg).includes('bind the DNS server there'))).toEqual([]);

      expect(answerData(await askUdp({ host: '127.0.0.3', port }, query('allowed.test')))).toEqual(['198.51.100.10']);
      // Nothing answers on the old gateway: nothing listens there any more (seen at once, not by waiting for silence).
      expect(await udpPortIsFree('127.0.0.2', port)).toBe(true);
      expect(daemon!.dns!.proxy.stats.queries.udp).toBe(2);
    } finally {
      await daemon?.close();
      daemon = undefined;
      await upstream.close();
    }
  });

  it('with --interface there is no Docker and nothing to follow', async () => {
    const config = parseConfig(['--interface', 'br0', '--listen', join(dir, 'dnstap.sock'), 'allowed.test.'], {});
    daemon = await startDaemon(config, { runner: fakeIptables().runner, log: recordingLogger().log });
    expect(daemon.follower).toBeUndefined();
    expect(daemon.bridge).toBe('br0');
  });
});
