/**
 * Policies per service, through the whole daemon in process: a fake Docker Engine API on a
 * Unix socket (the real client talks to it: the network, the containers with their labels,
 * the event stream), a fake iptables, dnstap answers from the containers' addresses. Each
 * container reaches only what its own policy allows, in its policy's chain, and its address
 * is routed there for as long as Docker says it is the container's.
 */
import type { ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { DockerClient } from '../../../src/docker/client.js';
import type { ContainerSummary } from '../../../src/docker/containers.js';
import type { IptablesRunner } from '../../../src/firewall/iptables.js';
import { parseOwnedRule, routeRule } from '../../../src/firewall/rules.js';
import { FakeClock } from '../../support/clock.js';
import { fakeDockerApi, json, type FakeDockerApi } from '../../support/docker-api.js';
import { clientResponse } from '../../support/dnstap.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer } from '../../support/socket.js';

const NETWORK_ID = 'a'.repeat(64);
const BRIDGE = 'br-aaaaaaaaaaaa';
const RUNNER = '1'.repeat(64);
const APP = '2'.repeat(64);
const WEB = '3'.repeat(64);
const CI_FILE = 'policies:\n  ci:\n    allow: ["github.com.", "*.github.com."]\n';

let dir: string;
let api: FakeDockerApi;
let daemon: Daemon | undefined;
/** A test that fails while the kernel is held must not leave close() waiting for it. */
let held: { release(): void } | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-daemon-policies-'));
  api = await fakeDockerApi();
});
afterEach(async () => {
  held?.release();
  await daemon?.close();
  daemon = undefined;
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

const until = async (predicate: () => boolean, what: string) => {
  for (let i = 0; i < 1000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 3));
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
};

function container(id: string, name: string, address: string, labels: Record<string, string> = {}): ContainerSummary {
  return { Id: id, Names: [`/${name}`], Labels: labels, State: 'running', NetworkSettings: { Networks: { 'on-his-name': { NetworkID: NETWORK_ID, IPAddress: address, GlobalIPv6Address: '' } } } };
}

/** dockerd as the daemon needs it: the network, the running containers (changeable), and /events streams. */
function dockerd(initial: ContainerSummary[]) {
  let running = initial;
  const streams: ServerResponse[] = [];
  api.route('/networks/on-his-name', json(200, { Id: NETWORK_ID, Name: 'on-his-name', Driver: 'bridge', EnableIPv6: false, Options: {}, IPAM: { Config: [{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }] } }));
  api.route('/containers/json', (request, response) => json(200, running)(request, response));
  api.route('/events', (_request, response) => {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.flushHeaders();
    streams.push(response);
  });
  return {
    /** Docker's view changes, and it says so on every event stream. */
    event(action: 'start' | 'die', id: string, now: ContainerSummary[]) {
      running = now;
      for (const s of streams) if (!s.destroyed) s.write(`${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id, Attributes: {} }, time: 1 })}\n`);
    },
    streams,
  };
}

/** A runner whose restores wait while the kernel is held: a change caught half-way. */
function holdable(runner: IptablesRunner) {
  let gate: { promise: Promise<void>; open(): void } | undefined;
  let waiting = 0;
  return {
    runner: {
      ...runner,
      async restore(script: string) {
        if (gate) {
          waiting++;
          await gate.promise;
          waiting--;
        }
        return runner.restore(script);
      },
    } satisfies IptablesRunner,
    hold() {
      let open = () => undefined as void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
    },
    release() {
      gate?.open();
      gate = undefined;
    },
    get waiting() {
      return waiting;
    },
  };
}

async function start(containers: ContainerSummary[], yaml = CI_FILE) {
  const docker = dockerd(containers);
  const file = join(dir, 'policies.yaml');
  await writeFile(file, yaml);
  const v4 = fakeIptables();
  const kernel = (held = holdable(v4.runner));
  const recorder = recordingLogger();
  const config = parseConfig(['--listen', join(dir, 'dnstap.sock'), '--policy', file, '--reconcile-interval', '0', 'allowed.test.'], {});
  daemon = await startDaemon(config, {
    runner: kernel.runner,
    docker: () => new DockerClient({ transport: 'unix', path: api.socket }),
    bridgeFacts: async () => ({ exists: true, addresses: [], ipv6Forwarding: false }),
    log: recorder.log,
    clock: new FakeClock(),
  });
  // Both followers (the network's and the containers') are listening to Docker.
  await until(() => docker.streams.length === 2, 'both event streams');
  await daemon.containers!.idle();
  return { docker, v4, kernel, file, ...recorder };
}

/** dnstap answers, each asked by `client`; waits until every firewall holds what they opened. */
async function answers(...asked: Array<{ client: string; name: string; address: string }>) {
  const producer = await connectProducer(join(dir, 'dnstap.sock'));
  await producer.write(bidirectionalStream(asked.map((a) => clientResponse(a.client, a.name, [{ type: 'A', name: a.name, ttl: 300, data: a.address }]))));
  await producer.closed;
  for (const { firewall } of daemon!.firewalls.list()) await firewall.settled();
}

const accepted = (rules: readonly string[]) => [...new Set(rules.map(parseOwnedRule).filter((r) => r?.role === 'accept').map((r) => r!.address!))].sort();
const routes = (v4: ReturnType<typeof fakeIptables>) => v4.rules('ON-HIS-NAME-CLIENTS');
const routeTo = (client: string, chain: string) => `-A ON-HIS-NAME-CLIENTS ${routeRule(BRIDGE, client, chain)}`;

describe('policies per service, in the daemon', () => {
  it("gives a container labelled on-his-name.policy=ci only ci's names, in ci's chain, and one without labels only the default's", async () => {
    const { v4, lines } = await start([container(RUNNER, 'runner', '172.18.0.2', { 'on-his-name.policy': 'ci' }), container(APP, 'app', '172.18.0.3')]);
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-ci')]);

    await answers(
      { client: '172.18.0.2', name: 'github.com', address: '198.51.100.1' },
      { client: '172.18.0.2', name: 'allowed.test', address: '198.51.100.3' }, // the default's name: not ci's
      { client: '172.18.0.3', name: 'allowed.test', address: '198.51.100.3' },
      { client: '172.18.0.3', name: 'api.github.com', address: '198.51.100.2' }, // ci's name: not the default's
    );

    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1']);
    expect(accepted(v4.rules('DOCKER-USER'))).toEqual(['198.51.100.3']);
    expect(JSON.stringify(await v4.runner.list())).not.toContain('198.51.100.2');
    expect(lines.filter((l) => l.msg === 'deny').map((l) => [l.client, l.name, l.policy])).toEqual([
      ['172.18.0.2', 'allowed.test.', 'ci'],
      ['172.18.0.3', 'api.github.com.', 'default'],
    ]);
    expect(lines.filter((l) => l.msg === 'allow').map((l) => [l.client, l.name, l.policy])).toEqual([
      ['172.18.0.2', 'github.com.', 'ci'],
      ['172.18.0.3', 'allowed.test.', 'default'],
    ]);
    expect(daemon!.clients.forClient('172.18.0.2').container).toEqual({ id: RUNNER, name: 'runner' });
    // One line for the labelled container, and none at info for the one without.
    expect(lines.filter((l) => l.container !== undefined && l.level >= 30).map(({ level, msg, addresses, policy }) => ({ level, msg, addresses, policy }))).toEqual([
      { level: 30, msg: 'container runner has policy ci', addresses: ['172.18.0.2'], policy: 'ci' },
    ]);
  });

  it("drops a dead container's route at once, and routes the next container Docker gives that address by its own labels", async () => {
    const app = container(APP, 'app', '172.18.0.3');
    const { docker, v4 } = await start([container(RUNNER, 'runner', '172.18.0.2', { 'on-his-name.policy': 'ci' }), app]);
    await answers({ client: '172.18.0.2', name: 'github.com', address: '198.51.100.1' });

    docker.event('die', RUNNER, [app]);
    await until(() => routes(v4).length === 0, 'the route to go');
    expect(daemon!.clients.forClient('172.18.0.2').policy.name).toBe('default');
    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1']); // ci is the file's: its chain and addresses stay

    docker.event('start', WEB, [app, container(WEB, 'web', '172.18.0.2', { 'on-his-name.allow': 'api.stripe.com.' })]);
    await until(() => routes(v4).length === 1, 'the new route');
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-c-333333333333')]);
    await answers({ client: '172.18.0.2', name: 'api.stripe.com', address: '198.51.100.9' }, { client: '172.18.0.2', name: 'github.com', address: '198.51.100.8' });
    expect(accepted(v4.rules('OHN-P-c-333333333333'))).toEqual(['198.51.100.9']);
    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1']);
    expect(JSON.stringify(await v4.runner.list())).not.toContain('198.51.100.8');

    // Its own policy goes with it.
    docker.event('die', WEB, [app]);
    await until(() => routes(v4).length === 0, 'the route to go again');
    await until(() => !v4.others.has('OHN-P-c-333333333333'), 'its chain to go');
    expect(daemon!.firewalls.firewall('c-333333333333', 4)).toBeUndefined();
  });

  it('routes a container whose label cannot be honoured to a chain that drops everything, and logs why', async () => {
    const { v4, lines } = await start([container(RUNNER, 'runner', '172.18.0.2', { 'on-his-name.allow': '*' })]);
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-refused')]);
    await answers({ client: '172.18.0.2', name: 'allowed.test', address: '198.51.100.3' });
    expect(JSON.stringify(await v4.runner.list())).not.toContain('198.51.100.3');
    expect(daemon!.clients.list()).toMatchObject([{ name: 'runner', policy: 'refused', refusal: expect.stringMatching(/bad pattern "\*": it allows every name/) }]);
    const said = lines.filter((l) => l.container === 'runner');
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40, policy: 'refused', msg: expect.stringMatching(/^container runner opens nothing: on-his-name\.allow: bad pattern "\*": it allows every name/) });
  });

  it("decides an answer that comes while a new container's policy is going into the kernel by the policy the kernel still holds it to, never by one with no firewall yet", async () => {
    const app = container(APP, 'app', '172.18.0.3');
    const { docker, v4, kernel, lines } = await start([app]);
    kernel.hold();
    docker.event('start', WEB, [app, container(WEB, 'web', '172.18.0.2', { 'on-his-name.allow': 'api.stripe.com.' })]);
    await until(() => kernel.waiting > 0, "the kernel to be asked for web's policy");

    // Its chain is not there yet, nor its route: the default policy decides, and says so (it was lost without a word).
    await answers({ client: '172.18.0.2', name: 'api.stripe.com', address: '198.51.100.9' });
    expect(lines.filter((l) => l.msg === 'allow' || l.msg === 'deny').map((l) => [l.msg, l.name, l.policy])).toEqual([['deny', 'api.stripe.com.', 'default']]);

    kernel.release();
    await until(() => lines.some((l) => l.container === 'web'), "web's line");
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-c-333333333333')]);
    await answers({ client: '172.18.0.2', name: 'api.stripe.com', address: '198.51.100.9' });
    expect(accepted(v4.rules('OHN-P-c-333333333333'))).toEqual(['198.51.100.9']);
    expect(lines.filter((l) => l.msg === 'allow').map((l) => [l.name, l.policy])).toEqual([['api.stripe.com.', 'c-333333333333']]);
  });

  it("reloads with daemon.reload(): a pattern dropped closes what it opened, a policy gone refuses its containers (and says so), a bad file changes nothing", async () => {
    const { v4, file, lines } = await start([container(RUNNER, 'runner', '172.18.0.2', { 'on-his-name.policy': 'ci' })]);
    await answers({ client: '172.18.0.2', name: 'github.com', address: '198.51.100.1' }, { client: '172.18.0.2', name: 'api.github.com', address: '198.51.100.2' });
    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1', '198.51.100.2']);

    await writeFile(file, 'policies:\n  ci:\n    allow: ["github.com."]\n');
    expect(await daemon!.reload('test')).toMatchObject({ ok: true, why: 'test' });
    await daemon!.firewalls.firewall('ci', 4)!.settled();
    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1']);

    await writeFile(file, 'policies:\n  ci:\n    allow: ["*"]\n');
    expect(await daemon!.reload('test')).toMatchObject({ ok: false, error: expect.stringMatching(/policies\.yaml:3: bad pattern "\*"/) });
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-ci')]);
    expect(accepted(v4.rules('OHN-P-ci'))).toEqual(['198.51.100.1']);

    await writeFile(file, 'policies:\n  deploy:\n    allow: ["deploy.test."]\n');
    expect(await daemon!.reload('test')).toMatchObject({ ok: true });
    expect(routes(v4)).toEqual([routeTo('172.18.0.2', 'OHN-P-refused')]);
    expect(lines.filter((l) => String(l.msg).startsWith('container runner opens nothing'))).toEqual([expect.objectContaining({ level: 40, policy: 'refused', msg: expect.stringMatching(/names no policy/) })]);
    expect(v4.others.has('OHN-P-ci')).toBe(false);
    expect(JSON.stringify(await v4.runner.list())).not.toContain('198.51.100.1');
  });
});
