import { afterEach, describe, expect, it } from 'vitest';
import { followNetwork, type NetworkFollower } from '../../../src/docker/follow.js';
import { resolveBridgeNetwork, type BridgeNetwork } from '../../../src/docker/network.js';
import { waitForNetwork } from '../../../src/docker/wait.js';
import { ConfigError } from '../../../src/util/errors.js';
import { FakeClock } from '../../support/clock.js';
import { fakeDocker, networkInspect } from '../../support/docker.js';
import { recordingLogger } from '../../support/log.js';

const until = async (predicate: () => boolean) => {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(predicate()).toBe(true);
};

let follower: NetworkFollower | undefined;
afterEach(async () => {
  await follower?.stop();
  follower = undefined;
});

async function follow(docker = fakeDocker(networkInspect('aaaaaaaaaaaa'))) {
  const { log, lines } = recordingLogger();
  const clock = new FakeClock();
  const changes: Array<[BridgeNetwork, BridgeNetwork]> = [];
  let reconciles = 0;
  const network = await resolveBridgeNetwork(docker.client, 'on-his-name');
  const connected = docker.nextConnection();
  follower = followNetwork({
    docker: docker.client,
    network,
    onChange: async (next, previous) => void changes.push([next, previous]),
    onReconnect: async () => void reconciles++,
    log,
    backoff: { initialMs: 1, maxMs: 4 },
    clock,
  });
  await connected;
  await follower.idle();
  return { docker, lines, changes, reconciles: () => reconciles, follower, clock };
}

describe('followNetwork', () => {
  it('says once that the network is gone, and moves when it is re-created with a new id', async () => {
    const { docker, lines, changes, follower: f } = await follow();
    expect(changes).toEqual([]);
    docker.setNetwork(undefined);
    docker.emit('network', 'destroy', 'a'.repeat(12).padEnd(64, '0'));
    await until(() => f.gone);
    await f.idle();
    const looks = docker.lookups;
    docker.emit('daemon', 'reload', 'x'); // another look while it is still gone: not said again
    await until(() => docker.lookups > looks);
    await f.idle();
    expect(lines.filter((l) => l.msg === 'network on-his-name is gone; waiting for it: docker network create on-his-name')).toHaveLength(1);

    docker.setNetwork(networkInspect('bbbbbbbbbbbb', '172.19.0.0/16'));
    docker.emit('network', 'create', 'b'.repeat(12).padEnd(64, '0'));
    await until(() => changes.length === 1);
    await f.idle();
    expect(changes[0]![1]).toMatchObject({ bridge: 'br-aaaaaaaaaaaa', subnet: '172.18.0.0/16' });
    expect(changes[0]![0]).toMatchObject({ bridge: 'br-bbbbbbbbbbbb', subnet: '172.19.0.0/16' });
    expect(f.network.bridge).toBe('br-bbbbbbbbbbbb');
    expect(f.gone).toBe(false);
    expect(lines.find((l) => l.msg === 'network on-his-name is back')).toBeDefined();
  });

  it('ignores other networks (a name that only starts the same too) and container connects', async () => {
    const { docker, changes, reconciles, follower: f } = await follow();
    const lookups = docker.lookups;
    docker.emit('network', 'create', 'c'.repeat(64), 'on-his-name-2');
    docker.emit('network', 'connect', 'a'.repeat(12).padEnd(64, '0'));
    docker.emit('container', 'start', 'd'.repeat(64), 'web');
    // Events are handled in order: once this one's reconcile is done, the three above were handled.
    docker.emit('daemon', 'reload', 'x');
    await until(() => reconciles() === 1);
    await f.idle();
    expect(docker.lookups).toBe(lookups + 1); // the reload's look, and no other
    expect(changes).toEqual([]);
  });

  it('on a dockerd restart: reconnects, looks again and asks for a reconcile, once', async () => {
    const { docker, changes, reconciles, follower: f, clock } = await follow();
    docker.stop(true);
    for (let i = 0; i < 5; i++) {
      await clock.nextTimer(); // Docker refused; the follower waits to retry
      await clock.runNext();
    }
    expect(reconciles()).toBe(0); // nothing to reconcile while Docker is away
    expect(docker.connections).toBe(1);
    const back = docker.nextConnection();
    docker.up();
    await clock.runNext();
    await back;
    await until(() => reconciles() === 1);
    await f.idle();
    expect(changes).toEqual([]);
    expect(reconciles()).toBe(1);
    await clock.advance(60_000); // connected: no retry, no second reconcile
    await f.idle();
    expect(reconciles()).toBe(1);
    expect(docker.connections).toBe(2);
  });

  it('catches a network re-created while dockerd was away, with no event to tell', async () => {
    const { docker, changes, reconciles, follower: f } = await follow();
    docker.stop(true);
    docker.setNetwork(networkInspect('eeeeeeeeeeee'));
    const back = docker.nextConnection();
    docker.up();
    await back;
    await until(() => reconciles() === 1);
    await f.idle();
    expect(changes.map(([next]) => next.bridge)).toEqual(['br-eeeeeeeeeeee']);
  });

  it('a daemon event asks for a reconcile', async () => {
    const { docker, reconciles, follower: f } = await follow();
    docker.emit('daemon', 'reload', 'x');
    await until(() => reconciles() === 1);
    await f.idle();
  });

  it('keeps the old bridge when the new network cannot be followed, and says why', async () => {
    const docker = fakeDocker(networkInspect('aaaaaaaaaaaa'));
    const { log, lines } = recordingLogger();
    const network = await resolveBridgeNetwork(docker.client, 'on-his-name');
    const connected = docker.nextConnection();
    follower = followNetwork({
      docker: docker.client,
      network,
      onChange: async () => {
        throw new ConfigError('unusable bridge name');
      },
      onReconnect: async () => undefined,
      log,
      backoff: { initialMs: 1, maxMs: 4 },
    });
    await connected;
    docker.setNetwork(networkInspect('ffffffffffff'));
    docker.emit('network', 'create', 'f'.repeat(64));
    await until(() => lines.some((l) => l.err === 'unusable bridge name'));
    await follower.idle();
    expect(follower.network.bridge).toBe('br-aaaaaaaaaaaa');
  });
});

describe('waitForNetwork', () => {
  it('waits for Docker and then for the network, with a progress line every 30 s, then returns it', async () => {
    const docker = fakeDocker(undefined);
    docker.stop(true);
    const { log, lines } = recordingLogger();
    const clock = new FakeClock();
    const waiting = waitForNetwork(docker.client, 'on-his-name', log, { clock }); // polls every second, says so every 30
    const progress = () => lines.filter((l) => String(l.msg).startsWith('waiting for network on-his-name'));
    await until(() => lines.some((l) => String(l.msg).endsWith('start dockerd')));
    await clock.advance(29_999); // 29 polls, all refused
    expect(progress()).toHaveLength(1);
    expect(docker.lookups).toBe(30);
    await clock.advance(1); // the poll at 30 s
    expect(progress().map((l) => [l.msg, l.waitedSeconds])).toEqual([
      ['waiting for network on-his-name (--wait-for-network): start dockerd', 0],
      ['waiting for network on-his-name (--wait-for-network): start dockerd', 30],
    ]);

    docker.up();
    await clock.advance(1_000); // the next poll, or the event stream coming back first
    await until(() => progress().length === 3);
    expect(progress()[2]!.msg).toBe('waiting for network on-his-name (--wait-for-network): docker network create on-his-name');
    await clock.advance(29_000);
    expect(progress()).toHaveLength(3); // less than 30 s since it said so

    docker.setNetwork(networkInspect('abcabcabcabc'));
    await clock.advance(1_000);
    expect((await waiting).bridge).toBe('br-abcabcabcabc');
    expect(progress().length).toBeGreaterThanOrEqual(3); // docker, network, and at least one progress line
    expect(progress().length).toBeLessThan(20); // not one per poll
    expect(lines.at(-1)?.msg).toBe('network on-his-name is there: starting');
    // Found by the poll in the last second (when the stream came back, with its jitter, sets the polls' phase).
    expect(lines.at(-1)?.waitedSeconds).toBeGreaterThanOrEqual(60);
    expect(lines.at(-1)?.waitedSeconds).toBeLessThanOrEqual(61);
  });

  it("ends the wait on Docker's create event, not on the next poll", async () => {
    const docker = fakeDocker(undefined);
    const subscribed = docker.nextConnection();
    const clock = new FakeClock();
    const start = clock.now();
    const waiting = waitForNetwork(docker.client, 'on-his-name', recordingLogger().log, { clock });
    await subscribed;
    expect(docker.subscriptions).toEqual([{ type: ['network'] }]);
    docker.setNetwork(networkInspect('abcabcabcabc'));
    docker.emit('network', 'create', 'other'.padEnd(64, '0'), 'another-network');
    docker.emit('network', 'create', 'abcabcabcabc'.padEnd(64, '0'));
    // The clock never moves: no poll can have ended the wait.
    expect((await waiting).bridge).toBe('br-abcabcabcabc');
    expect(clock.now()).toBe(start);
    expect(docker.lookups).toBeLessThanOrEqual(3); // at start, on connecting to the stream, on the event
  });

  it('does not wait for what waiting cannot fix', async () => {
    const docker = fakeDocker(networkInspect('abcabcabcabc', '172.18.0.0/16', { Driver: 'overlay' }));
    await expect(waitForNetwork(docker.client, 'on-his-name', recordingLogger().log, { pollMs: 1 })).rejects.toThrow(/overlay driver/);
  });
});
