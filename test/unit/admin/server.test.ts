/**
 * The admin API over real HTTP on loopback: the server's rules (404, 405, 500, JSON),
 * then the daemon in process with a fake kernel, answering what it did.
 */
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AcceptedView, HealthView, MatchersView } from '../../../src/admin/api.js';
import { json, startAdminServer, type AdminServer } from '../../../src/admin/server.js';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { ConfigError } from '../../../src/util/errors.js';
import { clientResponse } from '../../support/dnstap.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer } from '../../support/socket.js';

const LOOPBACK = { host: '127.0.0.1', port: 0, loopback: true };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the admin HTTP server', () => {
  let server: AdminServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves GET on known paths as JSON, 404 elsewhere, 405 for other methods, 500 for a failing handler', async () => {
    const { log, lines } = recordingLogger();
    server = await startAdminServer({
      address: LOOPBACK,
      routes: { '/ok': async () => json(200, { fine: true }), '/broken': async () => { throw new Error('kernel unreadable'); } },
      log,
    });
    const ok = await fetch(`${server.url}/ok?verbose=1`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await ok.json()).toEqual({ fine: true });

    const missing = await fetch(`${server.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'no such path: /nope', paths: ['/ok', '/broken'] });

    const posted = await fetch(`${server.url}/ok`, { method: 'POST', body: 'x' });
    expect(posted.status).toBe(405);
    expect(posted.headers.get('allow')).toBe('GET');
    expect(await posted.json()).toMatchObject({ error: expect.stringContaining('read-only') });

    const broken = await fetch(`${server.url}/broken`);
    expect(broken.status).toBe(500);
    expect(await broken.json()).toEqual({ error: 'kernel unreadable' });
    expect(lines.find((l) => l.msg === 'admin API request failed')).toMatchObject({ path: '/broken', err: 'kernel unreadable' });
  });

  it('says so when told to listen beyond loopback: no authentication', async () => {
    const { log, lines } = recordingLogger();
    server = await startAdminServer({ address: { ...LOOPBACK, loopback: false }, routes: {}, log });
    expect(lines.find((l) => l.level === 40)?.msg).toMatch(/non-loopback address: it has no authentication/);
    const quiet = recordingLogger();
    const second = await startAdminServer({ address: LOOPBACK, routes: {}, log: quiet.log });
    expect(quiet.lines.filter((l) => l.level >= 40)).toEqual([]);
    await second.close();
  });

  it('turns a port in use into one ConfigError naming the fix', async () => {
    server = await startAdminServer({ address: LOOPBACK, routes: {}, log: recordingLogger().log });
    const port = Number(new URL(server.url).port);
    const taken = startAdminServer({ address: { ...LOOPBACK, port }, routes: {}, log: recordingLogger().log });
    await expect(taken).rejects.toThrow(ConfigError);
    await expect(taken).rejects.toThrow(`--admin-listen 127.0.0.1:${port}: the address is already in use: pick another port`);
  });
});

describe('the daemon with --admin-listen, in process', () => {
  let dir: string;
  let daemon: Daemon | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-admin-'));
  });
  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const A = (name: string, data: string, ttl = 60) => ({ type: 'A' as const, name, data, ttl });
  const socketPath = () => join(dir, 'dnstap.sock');
  async function start(args: string[], kernel = fakeIptables()) {
    const config = parseConfig(['--interface', 'br0', '--listen', socketPath(), '--min-ttl', '60', '--ttl-grace', '0', '--admin-listen', String(await freePort()), ...args], {});
    const recorder = recordingLogger();
    daemon = await startDaemon(config, { runner: kernel.runner, log: recorder.log });
    return { kernel, ...recorder, get: (path: string) => fetch(`${daemon!.admin!.url}${path}`) };
  }
  async function send(frames: Buffer[]) {
    const producer = await connectProducer(socketPath());
    await producer.write(bidirectionalStream(frames));
    await producer.closed;
    await daemon!.firewall.settled();
  }

  it('lists each open address with its name, client, expiry and kernel counters', async () => {
    const { kernel, get } = await start(['allowed.test.', '*.cdn.test.']);
    const before = Date.now();
    await send([
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10', 600)]),
      clientResponse('192.0.2.11', 'www.cdn.test', [A('www.cdn.test', '198.51.100.12')]),
      clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '203.0.113.10')]),
    ]);
    kernel.count('198.51.100.10/32 -i br0 -p tcp -m tcp --dport 443', 3, 180);
    kernel.count('198.51.100.10/32 -i br0 -p tcp -m tcp --dport 80', 1, 60);

    const response = await get('/api/accepted');
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await response.json()) as AcceptedView;
    expect(body.addresses).toEqual([
      { address: '198.51.100.10', family: 4, name: 'allowed.test.', policy: 'default', client: '192.0.2.10', container: null, expiresAt: expect.any(String), expiresInSeconds: expect.any(Number), packets: 4, bytes: 240 },
      { address: '198.51.100.12', family: 4, name: 'www.cdn.test.', policy: 'default', client: '192.0.2.11', container: null, expiresAt: expect.any(String), expiresInSeconds: expect.any(Number), packets: 0, bytes: 0 },
    ]);
    const first = body.addresses[0]!;
    expect(Date.parse(first.expiresAt!)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(first.expiresInSeconds).toBeGreaterThan(590);
    expect(first.expiresInSeconds).toBeLessThanOrEqual(601);
  });

  it('counts allow decisions per pattern, in the order given', async () => {
    const { get } = await start(['allowed.test.', '*.cdn.test.', 'never.test.']);
    await send([
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10')]),
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10')]),
      clientResponse('192.0.2.11', 'a.cdn.test', [A('a.cdn.test', '198.51.100.12')]),
      clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '203.0.113.10')]),
    ]);
    expect((await (await get('/api/matchers')).json()) as MatchersView).toEqual({
      matchers: [
        { policy: 'default', pattern: 'allowed.test.', allows: 2 },
        { policy: 'default', pattern: '*.cdn.test.', allows: 1 },
        { policy: 'default', pattern: 'never.test.', allows: 0 },
      ],
      decisions: { allow: 3, deny: 1, skip: 0 },
    });
  });

  it('exposes Prometheus metrics read from the pipeline and the firewall', async () => {
    const { get } = await start(['allowed.test.']);
    await send([
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10'), A('allowed.test', '198.51.100.11')]),
      clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '203.0.113.10')]),
      Buffer.from('not protobuf'),
    ]);
    const response = await get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('on_his_name_dnstap_frames_total')).toBe(3);
    expect(value('on_his_name_decode_errors_total')).toBe(1);
    expect(value('on_his_name_decisions_total{outcome="allow"}')).toBe(1);
    expect(value('on_his_name_decisions_total{outcome="deny"}')).toBe(1);
    expect(value('on_his_name_decisions_total{outcome="skip"}')).toBe(0);
    expect(value('on_his_name_pattern_allows_total{policy="default",pattern="allowed.test."}')).toBe(1);
    expect(value('on_his_name_addresses_installed{family="4",policy="default"}')).toBe(2);
    expect(value('on_his_name_addresses_tracked{family="4",policy="default"}')).toBe(2);
    expect(value('on_his_name_addresses_opened_total{family="4",policy="default"}')).toBe(2);
    expect(value('on_his_name_applies_total{family="4",policy="default"}')).toBe(1);
    expect(value('on_his_name_rule_latency_seconds_count{family="4"}')).toBe(2);
    expect(value('on_his_name_rule_latency_seconds_bucket{le="+Inf",family="4"}')).toBe(2);
    expect(value('on_his_name_queue_dropped_total{family="4",policy="default"}')).toBe(0);
    expect(value('on_his_name_queue_peak_pending{family="4",policy="default"}')).toBe(2);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  });

  it('is healthy while serving; unhealthy with the reason when the socket is gone or the kernel keeps refusing', async () => {
    const kernel = fakeIptables();
    const { get } = await start(['--reconcile-interval', '0', 'allowed.test.'], kernel);
    const healthy = await get('/healthz');
    expect(healthy.status).toBe(200);
    expect(await healthy.json()).toEqual({ status: 'ok', reasons: [], mode: 'enforcing', warnings: [], addresses: 0, waiting: 0 } satisfies HealthView);

    kernel.failNext(1_000);
    daemon!.firewall.allow('198.51.100.10');
    for (let i = 0; i < 100 && daemon!.firewall.stats.failingApplies < 3; i++) await new Promise((r) => setTimeout(r, 100));
    const failing = await get('/healthz');
    expect(failing.status).toBe(503);
    expect(await failing.json()).toMatchObject({ status: 'unhealthy', reasons: [expect.stringMatching(/IPv4 firewall failed its last \d+ kernel changes/)], waiting: 1 });
    kernel.failNext(0);
    await daemon!.firewall.settled();
    expect((await get('/healthz')).status).toBe(200);

    await unlink(socketPath());
    const gone = await get('/healthz');
    expect(gone.status).toBe(503);
    expect(((await gone.json()) as HealthView).reasons).toEqual([`the dnstap socket ${socketPath()} is gone, so no DNS server can connect: restart on-his-name`]);
  }, 20_000);

  it('is unhealthy with the reason while a rule above ours lets the bridge past them, and healthy again once it is gone', async () => {
    const kernel = fakeIptables();
    const { get, lines } = await start(['--reconcile-interval', '0', 'allowed.test.'], kernel);
    expect((await get('/healthz')).status).toBe(200);
    kernel.chain.splice(1, 0, '-A DOCKER-USER -j ACCEPT');
    await daemon!.firewall.reconcile();
    const bypassed = await get('/healthz');
    expect(bypassed.status).toBe(503);
    expect(((await bypassed.json()) as HealthView).reasons).toEqual([
      expect.stringMatching(/^IPv4 egress is NOT filtered: a rule above on-his-name's block in DOCKER-USER lets traffic from br0 past on-his-name: "-A DOCKER-USER -j ACCEPT"/),
    ]);
    expect(lines.filter((l) => l.level === 50 && l.msg.startsWith('egress from br0 is NOT filtered'))).toHaveLength(1);
    kernel.chain.splice(1, 1);
    await daemon!.firewall.reconcile();
    expect((await get('/healthz')).status).toBe(200);
  });

  it('listens on nothing without --admin-listen, and stops listening on close', async () => {
    const { get } = await start(['allowed.test.']);
    const url = daemon!.admin!.url;
    expect((await get('/healthz')).status).toBe(200);
    await daemon!.close();
    daemon = undefined;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();

    const config = parseConfig(['--interface', 'br0', '--listen', socketPath(), 'allowed.test.'], {});
    daemon = await startDaemon(config, { runner: fakeIptables().runner, log: recordingLogger().log });
    expect(daemon.admin).toBeUndefined();
  });
});
