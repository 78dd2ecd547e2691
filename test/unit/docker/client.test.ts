import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerApiError, DockerClient, MAX_ANSWER_BYTES } from '../../../src/docker/client.js';
import { containersOnNetwork, inspectedContainer } from '../../../src/docker/containers.js';
import { followEvents } from '../../../src/docker/events.js';
import { firewallBackendDriver } from '../../../src/docker/info.js';
import { resolveBridgeNetwork, waitableFailure } from '../../../src/docker/network.js';
import { ConfigError } from '../../../src/util/errors.js';
import { FakeClock } from '../../support/clock.js';
import { fakeDockerApi, json, type FakeDockerApi } from '../../support/docker-api.js';
import { recordingLogger } from '../../support/log.js';

const NETWORK_ID = '3f0c1a2b4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a';
const inspect = { Id: NETWORK_ID, Name: 'on-his-name', Driver: 'bridge', EnableIPv6: false, Options: {}, IPAM: { Config: [{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }] } };
const event = (action: string, name = 'on-his-name') => `${JSON.stringify({ Type: 'network', Action: action, Actor: { ID: NETWORK_ID, Attributes: { name } }, time: 1 })}\n`;

const until = async (predicate: () => boolean) => {
  for (let i = 0; i < 1000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(predicate()).toBe(true);
};

/** Everything a stream says until it closes: its text, and how it ended. */
function collect(stream: NodeJS.ReadableStream) {
  const seen = { text: '', ended: false, closed: false, error: undefined as Error | undefined };
  stream.on('data', (chunk: string | Buffer) => (seen.text += chunk.toString()));
  stream.once('end', () => (seen.ended = true));
  stream.on('error', (err: Error) => (seen.error = err));
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return { seen, closed: closed.then(() => ((seen.closed = true), seen)) };
}

/** /events as dockerd serves it: headers at once, then lines whenever the test writes them. */
function eventsRoute(api: FakeDockerApi): ServerResponse[] {
  const streams: ServerResponse[] = [];
  api.route('/events', (_request, response) => {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.flushHeaders();
    streams.push(response);
  });
  return streams;
}

describe('DockerClient on a Unix socket', () => {
  let api: FakeDockerApi;
  let docker: DockerClient;
  beforeEach(async () => {
    api = await fakeDockerApi();
    docker = new DockerClient({ transport: 'unix', path: api.socket });
  });
  afterEach(() => api.close());

  it('inspects a network with GET /networks/{name}, with no API version in the path', async () => {
    api.route('/networks/on-his-name', json(200, inspect));
    expect(await docker.getNetwork('on-his-name').inspect()).toEqual(inspect);
    expect(api.requests).toEqual(['GET /networks/on-his-name']);
    expect(await resolveBridgeNetwork(docker, 'on-his-name')).toMatchObject({ bridge: 'br-3f0c1a2b4d5e', gateway: '172.18.0.1' });
  });

  it('answers a missing network with statusCode 404, which callers tell from Docker being away', async () => {
    api.route('/networks/on-his-name', json(404, { message: 'network on-his-name not found' }));
    const failure = await docker.getNetwork('on-his-name').inspect().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(DockerApiError);
    expect(failure).toMatchObject({ statusCode: 404, reason: 'network on-his-name not found' });

    const explained = await resolveBridgeNetwork(docker, 'on-his-name').catch((err: unknown) => err);
    expect(explained).toEqual(new ConfigError('Docker network "on-his-name" not found: create it with "docker network create on-his-name"'));
    expect(waitableFailure(explained)).toBe('missing');
  });

  it('keeps what Docker said about any other failure, JSON or not', async () => {
    api.route('/networks/broken', json(500, { message: 'driver failed' }));
    api.route('/networks/proxied', (_request, response) => response.writeHead(502, 'Bad Gateway').end('upstream down\n'));
    api.route('/networks/garbled', (_request, response) => response.writeHead(200).end('{"Id": '));
    await expect(resolveBridgeNetwork(docker, 'broken')).rejects.toThrow('asking Docker for network "broken" failed: Docker answered GET /networks/broken with HTTP 500: driver failed');
    await expect(docker.getNetwork('proxied').inspect()).rejects.toMatchObject({ statusCode: 502, reason: 'upstream down' });
    await expect(docker.getNetwork('garbled').inspect()).rejects.toThrow(/not JSON: \{"Id": /);
    expect(waitableFailure(await resolveBridgeNetwork(docker, 'broken').catch((err: unknown) => err))).toBeUndefined();
  });

  it('refuses an answer longer than MAX_ANSWER_BYTES without holding all of it', async () => {
    api.route('/containers/json', (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const more = () => {
        while (!response.destroyed && response.write(chunk));
      };
      response.on('drain', more);
      more();
    });
    await expect(docker.listContainers({ filters: {} })).rejects.toThrow(`Docker's answer to GET /containers/json?filters=%7B%7D is longer than ${MAX_ANSWER_BYTES} bytes`);
  });

  it('names the socket when nothing listens there (ENOENT), and calls that waitable', async () => {
    await api.stop();
    const failure = await docker.info().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'ENOENT', address: api.socket });
    const explained = await resolveBridgeNetwork(docker, 'on-his-name').catch((err: unknown) => err);
    expect((explained as Error).message).toBe(`cannot reach Docker at ${api.socket} (ENOENT): start dockerd, set DOCKER_HOST, or name the bridge with --interface`);
    expect(waitableFailure(explained)).toBe('unreachable');
  });

  it('URL-encodes names and ids in the path', async () => {
    api.route('/networks/a b', json(200, inspect));
    await docker.getNetwork('a b').inspect();
    expect(api.requests).toEqual(['GET /networks/a b']);
  });

  describe('events', () => {
    it('streams GET /events?filters=… as text, a character split across chunks kept whole', async () => {
      const streams = eventsRoute(api);
      const stream = await docker.getEvents({ filters: { type: ['network', 'daemon'] } });
      expect(api.requests).toEqual(['GET /events?filters={"type":["network","daemon"]}']);
      const { seen } = collect(stream);
      const line = event('create', 'café');
      const bytes = Buffer.from(line);
      const cut = bytes.indexOf(Buffer.from('é')) + 1; // between the two bytes of é
      streams[0]!.write(bytes.subarray(0, cut));
      // The first part has been read before the second is sent: what it decoded to is there, the half é held back.
      await until(() => seen.text.length > 0);
      expect(seen.text).toBe(line.slice(0, line.indexOf('é')));
      streams[0]!.write(bytes.subarray(cut));
      await until(() => seen.text === line);
      streams[0]!.end();
    });

    it('closes the stream when aborted, and the connection with it', async () => {
      const streams = eventsRoute(api);
      const abort = new AbortController();
      const stream = await docker.getEvents({ filters: {}, abortSignal: abort.signal });
      const { seen, closed } = collect(stream);
      streams[0]!.write(event('create'));
      await until(() => seen.text.length > 0);
      const serverSaw = new Promise((resolve) => streams[0]!.once('close', resolve));
      abort.abort();
      await closed;
      await serverSaw;
    });

    it('rejects a subscription aborted before Docker answers', async () => {
      api.route('/events', () => undefined); // dockerd busy: no headers yet
      const abort = new AbortController();
      const pending = docker.getEvents({ filters: {}, abortSignal: abort.signal });
      await until(() => api.requests.length === 1);
      abort.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    });

    it('ends the stream when dockerd goes away mid-stream', async () => {
      const streams = eventsRoute(api);
      const stream = await docker.getEvents({ filters: {} });
      const { seen, closed } = collect(stream);
      streams[0]!.write(event('create'));
      await until(() => seen.text.length > 0);
      await api.stop();
      expect((await closed).closed).toBe(true);
      expect(seen.text).toBe(event('create'));
    });

    it('ends the stream when dockerd ends it', async () => {
      const streams = eventsRoute(api);
      const { seen, closed } = collect(await docker.getEvents({ filters: {} }));
      streams[0]!.end(event('destroy'));
      await closed;
      expect(seen).toMatchObject({ ended: true, text: event('destroy') });
    });

    it('refuses a subscription Docker refuses, with its status', async () => {
      api.route('/events', json(400, { message: 'invalid filter' }));
      await expect(docker.getEvents({ filters: { bogus: ['x'] } })).rejects.toMatchObject({ statusCode: 400, reason: 'invalid filter' });
    });

    it('lets followEvents follow Docker across a restart', async () => {
      const streams = eventsRoute(api);
      const clock = new FakeClock();
      const { log, lines } = recordingLogger();
      const actions: string[] = [];
      const connects: boolean[] = [];
      const follower = followEvents({
        docker,
        filters: { type: ['network'] },
        onEvent: (e) => actions.push(e.action),
        onConnect: (again) => connects.push(again),
        log,
        backoff: { initialMs: 5, maxMs: 20 },
        clock,
      });
      try {
        await until(() => streams.length === 1);
        streams[0]!.write(event('create'));
        await until(() => actions.length === 1);
        await api.stop();
        await until(() => lines.some((l) => String(l.msg).startsWith("Docker's event stream ended")));
        const down = clock.now();
        // A few reconnects, each refused (nothing listens): after each the follower waits on the clock.
        for (let refused = 0; refused < 3; refused++) {
          await clock.nextTimer();
          expect(streams).toHaveLength(1);
          await clock.runNext();
        }
        await clock.nextTimer();
        // One line for the outage, not one per retry.
        expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([expect.stringMatching(/^Docker's event stream ended/)]);
        const away = clock.nextIn! + clock.now() - down;
        await api.start();
        await clock.runNext();
        await until(() => streams.length === 2 && connects.length === 2);
        expect(lines.find((l) => l.msg === "following Docker's events again")).toMatchObject({ downForMs: away });
        streams[1]!.write(event('destroy'));
        await until(() => actions.length === 2);
        expect(actions).toEqual(['create', 'destroy']);
        expect(connects).toEqual([false, true]);
      } finally {
        await follower.stop();
      }
    });
  });

  describe('containers', () => {
    const web = {
      Id: 'c1'.padEnd(64, '0'),
      Names: ['/proxy/web', '/web'],
      Labels: { 'on-his-name.allow': 'api.example.com', 'com.docker.compose.service': 'web' },
      State: 'running',
      NetworkSettings: { Networks: { 'on-his-name': { NetworkID: NETWORK_ID, IPAddress: '172.18.0.2', GlobalIPv6Address: 'fd00::2' } } },
    };
    const worker = {
      Id: 'c2'.padEnd(64, '0'),
      Names: ['/worker'],
      Labels: {},
      State: 'running',
      NetworkSettings: { Networks: { bridge: { NetworkID: 'b'.repeat(64), IPAddress: '172.17.0.2' }, 'on-his-name': { NetworkID: NETWORK_ID, IPAddress: '172.18.0.3', GlobalIPv6Address: '' } } },
    };

    it('lists the containers on a network with GET /containers/json?filters={"network":[NAME]}', async () => {
      api.route('/containers/json', json(200, [web, worker]));
      expect(await containersOnNetwork(docker, { name: 'on-his-name', id: NETWORK_ID })).toEqual([
        { id: web.Id, name: 'web', labels: web.Labels, ipv4: '172.18.0.2', ipv6: 'fd00::2' },
        { id: worker.Id, name: 'worker', labels: {}, ipv4: '172.18.0.3' },
      ]);
      expect(api.requests).toEqual(['GET /containers/json?filters={"network":["on-his-name"]}']);
    });

    it('inspects one container with GET /containers/{id}/json', async () => {
      const inspected = { Id: web.Id, Name: '/web', Config: { Labels: web.Labels }, State: { Running: true }, NetworkSettings: web.NetworkSettings };
      api.route(`/containers/${web.Id}/json`, json(200, inspected));
      const container = await docker.inspectContainer(web.Id);
      expect(inspectedContainer(container, { name: 'on-his-name', id: NETWORK_ID })).toEqual({ id: web.Id, name: 'web', labels: web.Labels, ipv4: '172.18.0.2', ipv6: 'fd00::2' });
      api.route('/containers/gone/json', json(404, { message: 'No such container: gone' }));
      await expect(docker.inspectContainer('gone')).rejects.toMatchObject({ statusCode: 404 });
    });
  });

  it('reads GET /info, with the firewall backend Docker 29 reports and without it before', async () => {
    api.route('/info', json(200, { ServerVersion: '29.1.0', FirewallBackend: { Driver: 'nftables', Info: [['ReloadedAt', '2025-11-12T10:00:00Z']] } }));
    expect(firewallBackendDriver(await docker.info())).toBe('nftables');
    api.route('/info', json(200, { ServerVersion: '20.10.24+dfsg1' }));
    expect(firewallBackendDriver(await docker.info())).toBeUndefined();
  });
});

describe('DockerClient over TCP', () => {
  it('names HOST:PORT when nothing listens there (ECONNREFUSED)', async () => {
    const server = createHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const docker = new DockerClient({ transport: 'tcp', host: '127.0.0.1', port });
    const explained = await resolveBridgeNetwork(docker, 'on-his-name').catch((err: unknown) => err);
    expect((explained as Error).message).toMatch(new RegExp(`^cannot reach Docker at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    expect(waitableFailure(explained)).toBe('unreachable');
  });

  it('speaks plain HTTP to tcp://HOST:PORT', async () => {
    const server = createHttpServer((request, response) => json(200, { ServerVersion: request.url })(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const docker = new DockerClient({ transport: 'tcp', host: '127.0.0.1', port: (server.address() as AddressInfo).port });
      expect(await docker.info()).toEqual({ ServerVersion: '/info' });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

const hasOpenssl = (await execa('sh', ['-c', 'command -v openssl'], { reject: false })).exitCode === 0;

describe.skipIf(!hasOpenssl)('DockerClient with DOCKER_TLS_VERIFY', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-docker-tls-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd --tlsverify` setups have. */
  async function certificates() {
    const ssl = (...args: string[]) => execa('openssl', args, { cwd: dir });
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await ssl('req', '-x509', ...key, '-days', '1', '-subj', '/CN=test CA', '-keyout', 'ca-key.pem', '-out', 'ca.pem');
    for (const [who, extension] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
      await ssl('req', ...key, '-subj', `/CN=${who}`, '-keyout', `${who}-key.pem`, '-out', `${who}.csr`);
      await writeFile(join(dir, `${who}.ext`), `${extension}\n`);
      await ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`, '-out', `${who}.pem`);
    }
    // The names the docker CLI (and DOCKER_CERT_PATH) use for the client's side.
    await writeFile(join(dir, 'cert.pem'), await readFile(join(dir, 'client.pem')));
    await writeFile(join(dir, 'key.pem'), await readFile(join(dir, 'client-key.pem')));
    const read = (file: string) => readFile(join(dir, file));
    return { ca: await read('ca.pem'), cert: await read('server.pem'), key: await read('server-key.pem') };
  }

  it('checks the daemon against ca.pem and shows it cert.pem', async () => {
    const server = createHttpsServer({ ...(await certificates()), requestCert: true, rejectUnauthorized: true }, (request, response) => {
      const peer = (request.socket as import('node:tls').TLSSocket).getPeerCertificate();
      json(200, { ServerVersion: peer.subject?.CN })(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      expect(await new DockerClient({ transport: 'tcp', host: '127.0.0.1', port, tls: { certPath: dir } }).info()).toEqual({ ServerVersion: 'client' });
      // A daemon that shows a certificate ca.pem did not sign is refused.
      await writeFile(join(dir, 'ca.pem'), await readFile(join(dir, 'server.pem')));
      await expect(new DockerClient({ transport: 'tcp', host: '127.0.0.1', port, tls: { certPath: dir } }).info()).rejects.toMatchObject({ code: expect.stringMatching(/CERT|SIGNATURE|ISSUER/) });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('says which file is missing', () => {
    expect(() => new DockerClient({ transport: 'tcp', host: '127.0.0.1', port: 2376, tls: { certPath: dir } })).toThrow(
      new ConfigError(`DOCKER_TLS_VERIFY is set but ${join(dir, 'ca.pem')} cannot be read (ENOENT): set DOCKER_CERT_PATH`),
    );
  });
});
