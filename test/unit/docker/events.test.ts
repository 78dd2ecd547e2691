import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { reconnectDelay } from '../../../src/util/backoff.js';
import { EventLineDecoder, MAX_EVENT_LINE, followEvents, parseEventLine, type DockerEvent } from '../../../src/docker/events.js';
import { FakeClock } from '../../support/clock.js';
import { fakeDocker } from '../../support/docker.js';
import { recordingLogger } from '../../support/log.js';

const destroy = { Type: 'network', Action: 'destroy', Actor: { ID: 'a1', Attributes: { name: 'on-his-name', type: 'bridge' } }, scope: 'local', time: 1, timeNano: 1 };
const create = { Type: 'network', Action: 'create', Actor: { ID: 'b2', Attributes: { name: 'on-his-name', type: 'bridge' } }, scope: 'local', time: 2, timeNano: 2 };
const reload = { Type: 'daemon', Action: 'reload', Actor: { ID: 'd3', Attributes: { name: 'docker' } }, time: 3 };
const stream = [destroy, create, reload].map((e) => `${JSON.stringify(e)}\n`).join('');
const expected: DockerEvent[] = [
  { type: 'network', action: 'destroy', id: 'a1', attributes: { name: 'on-his-name', type: 'bridge' } },
  { type: 'network', action: 'create', id: 'b2', attributes: { name: 'on-his-name', type: 'bridge' } },
  { type: 'daemon', action: 'reload', id: 'd3', attributes: { name: 'docker' } },
];

const until = async (predicate: () => boolean) => {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(predicate()).toBe(true);
};

/** Let a follower that cannot reach Docker retry `times` times: each retry waits on the clock, and the fake fails at once. */
async function failedRetries(clock: FakeClock, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await clock.nextTimer();
    await clock.runNext();
  }
}

describe('EventLineDecoder', () => {
  it('reads JSON lines whole, byte by byte, and split anywhere', () => {
    expect(new EventLineDecoder().push(stream)).toEqual(expected);
    const bytes = new EventLineDecoder();
    expect([...Buffer.from(stream)].flatMap((b) => bytes.push(Buffer.of(b)))).toEqual(expected);
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 8 }), (cuts) => {
        const decoder = new EventLineDecoder();
        const at = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length];
        const events = at.slice(1).flatMap((end, i) => decoder.push(stream.slice(at[i], end)));
        expect(events).toEqual(expected);
      }),
    );
  });

  it('keeps a line until its newline arrives', () => {
    const decoder = new EventLineDecoder();
    expect(decoder.push(JSON.stringify(destroy))).toEqual([]);
    expect(decoder.push('\n')).toEqual([expected[0]]);
  });

  it('skips and counts lines that are not events, and goes on with the next', () => {
    const decoder = new EventLineDecoder();
    const events = decoder.push(`not json\n{"Type":"network"}\n[1,2]\nnull\n\n${JSON.stringify(create)}\n`);
    expect(events).toEqual([expected[1]]);
    expect(decoder.skipped).toBe(4);
  });

  it('drops an overlong line without buffering it, and reads the line after it', () => {
    const decoder = new EventLineDecoder();
    const chunk = 'x'.repeat(64 * 1024);
    for (let sent = 0; sent <= MAX_EVENT_LINE; sent += chunk.length) expect(decoder.push(chunk)).toEqual([]);
    expect(decoder.push(`${chunk}\n${JSON.stringify(destroy)}\n`)).toEqual([expected[0]]);
    expect(decoder.skipped).toBe(1);
  });

  it('reads the older API fields (status, id) too', () => {
    expect(parseEventLine(JSON.stringify({ Type: 'network', status: 'destroy', id: 'c4' }))).toEqual({ type: 'network', action: 'destroy', id: 'c4', attributes: {} });
  });
});

describe('followEvents', () => {
  it('delivers events, reconnects when the stream ends, and says so once per outage, not per retry', async () => {
    const docker = fakeDocker(undefined);
    const { log, lines } = recordingLogger();
    const events: DockerEvent[] = [];
    const connects: boolean[] = [];
    const connected = docker.nextConnection();
    const clock = new FakeClock();
    const follower = followEvents({
      docker: docker.client,
      filters: { type: ['network', 'daemon'] },
      onEvent: (e) => events.push(e),
      onConnect: (again) => connects.push(again),
      log,
      backoff: { initialMs: 1, maxMs: 4 },
      clock,
    });
    await connected;
    expect(docker.subscriptions[0]).toEqual({ type: ['network', 'daemon'] });
    docker.write(`${JSON.stringify(destroy)}\n${JSON.stringify(create).slice(0, 20)}`);
    docker.write(`${JSON.stringify(create).slice(20)}\n`);
    await until(() => events.length === 2);
    expect(events.map((e) => e.action)).toEqual(['destroy', 'create']);

    docker.stop(true); // dockerd goes down: the stream ends and connecting fails for a while
    await until(() => lines.filter((l) => String(l.msg).includes('event stream ended')).length === 1);
    const down = clock.now();
    await failedRetries(clock, 5);
    expect(connects).toEqual([false]);
    expect(docker.connections).toBe(1);
    const back = docker.nextConnection();
    docker.up();
    await clock.runNext();
    await back;
    await until(() => connects.length === 2);
    expect(connects).toEqual([false, true]);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([expect.stringContaining("Docker's event stream ended")]);
    expect(lines.filter((l) => l.msg === "following Docker's events again")).toHaveLength(1);
    expect(lines.find((l) => l.msg === "following Docker's events again")!.downForMs).toBe(clock.now() - down);
    // Five retries that failed and the one that did not, each at least half its backoff step.
    expect(clock.now() - down).toBeGreaterThanOrEqual([0, 1, 2, 3, 4, 5].reduce((sum, attempt) => sum + reconnectDelay(attempt, { initialMs: 1, maxMs: 4 }, () => 0), 0));

    docker.emit('daemon', 'reload', 'd3', 'docker');
    await until(() => events.length === 3);
    await follower.stop();
    expect(docker.connections).toBe(2);
  });

  it('keeps retrying when Docker is not there at first, saying so once', async () => {
    const docker = fakeDocker(undefined);
    docker.stop(true);
    const { log, lines } = recordingLogger();
    const connects: boolean[] = [];
    const clock = new FakeClock();
    const follower = followEvents({ docker: docker.client, filters: {}, onEvent: () => undefined, onConnect: (a) => connects.push(a), log, backoff: { initialMs: 1, maxMs: 2 }, clock });
    await failedRetries(clock, 10);
    expect(connects).toEqual([]);
    expect(docker.connections).toBe(0);
    const connected = docker.nextConnection();
    docker.up();
    await clock.runNext();
    await connected;
    await until(() => connects.length === 1);
    expect(connects).toEqual([false]);
    expect(lines.filter((l) => String(l.msg).startsWith("cannot follow Docker's events"))).toHaveLength(1);
    await follower.stop();
  });

  it('stops cleanly while waiting to reconnect', async () => {
    const docker = fakeDocker(undefined);
    docker.stop(true);
    const clock = new FakeClock();
    const follower = followEvents({ docker: docker.client, filters: {}, onEvent: () => undefined, onConnect: () => undefined, log: recordingLogger().log, backoff: { initialMs: 10_000, maxMs: 10_000 }, clock });
    await clock.nextTimer(); // the first attempt failed; it waits to retry
    const stopping = follower.stop();
    expect(clock.pending).toBe(0); // the wait ends with the stop, not at its end
    await stopping;
    docker.up();
    await clock.advance(60_000);
    expect(docker.connections).toBe(0);
  });
});
