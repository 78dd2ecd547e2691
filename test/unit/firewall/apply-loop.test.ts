/**
 * The apply loop on a FakeClock: a failed step waits its backoff before the retry (and not a
 * moment less), the wait climbs while the kernel keeps refusing, and stop() ends it at once.
 */
import { describe, expect, it } from 'vitest';
import { ApplyLoop, type StepResult } from '../../../src/firewall/apply-loop.js';
import { FakeClock, settle } from '../../support/clock.js';

/** A loop whose steps the test scripts: each entry is what the next step does. */
function scripted(steps: Array<StepResult | Error>) {
  const clock = new FakeClock(0);
  const ran: number[] = [];
  const failures: Array<{ attempt: number; retryInMs: number }> = [];
  let idle = 0;
  const loop = new ApplyLoop({
    step: async () => {
      ran.push(clock.now());
      const next = steps.shift() ?? 'idle';
      if (next instanceof Error) throw next;
      return next;
    },
    onFailure: (_err, attempt, retryInMs) => failures.push({ attempt, retryInMs }),
    onIdle: () => idle++,
    backoff: { initialMs: 200, maxMs: 1_000 },
    random: () => 1, // the top of each step: 200, 400, 800, 1000
    clock,
  });
  return { clock, loop, ran, failures, idle: () => idle };
}

/** Run `f` after `hops` turns of the microtask queue. */
function afterMicrotasks(hops: number, f: () => void): void {
  if (hops === 0) return f();
  queueMicrotask(() => afterMicrotasks(hops - 1, f));
}

const refused = () => new Error('iptables-restore: refused');

describe('ApplyLoop', () => {
  it('waits its backoff after a failure before the next step, not a moment less', async () => {
    const { clock, loop, ran, failures } = scripted([refused(), 'changed']);
    loop.kick();
    await settle();
    expect(ran).toEqual([0]);
    expect(failures).toEqual([{ attempt: 1, retryInMs: 200 }]);
    await clock.advance(199);
    expect(ran).toEqual([0]);
    await clock.advance(1);
    await loop.settled();
    expect(ran).toEqual([0, 200, 200]); // the retry, then the step that finds nothing left
  });

  it('keeps climbing while the kernel refuses, even when reading the kernel again succeeds between tries', async () => {
    const { clock, loop, failures } = scripted([refused(), 'prepared', refused(), 'prepared', refused(), 'prepared', refused(), 'changed', refused()]);
    loop.kick();
    for (let i = 0; i < 4; i++) {
      await clock.nextTimer();
      await clock.runNext();
    }
    await clock.nextTimer();
    expect(failures.map((f) => f.retryInMs)).toEqual([200, 400, 800, 1_000, 200]); // a change landed: from the bottom again
    loop.stop();
    await loop.settled();
  });

  it('ends at once on stop(), its wait included, and never steps again', async () => {
    const { clock, loop, ran, idle } = scripted([refused(), 'changed']);
    loop.kick();
    await settle();
    expect(clock.pending).toBe(1);
    loop.stop();
    await loop.settled();
    expect(clock.pending).toBe(0);
    loop.kick();
    await clock.advance(10_000);
    expect(ran).toEqual([0]);
    expect(idle()).toBe(0);
    expect(loop.isStopped).toBe(true);
  });

  it('runs one step at a time, on the next turn of the event loop, however often it is kicked', async () => {
    const { loop, ran, idle } = scripted(['changed', 'changed']);
    loop.kick();
    loop.kick();
    expect(ran).toEqual([]);
    await loop.settled();
    expect(ran).toHaveLength(3);
    expect(idle()).toBe(1);
  });

  it('runs again for work that arrives while its last step is finding nothing to do, however late in that step', async () => {
    const lost: number[] = [];
    for (let hops = 0; hops <= 6; hops++) {
      let work = 1;
      let arrived = false;
      const loop: ApplyLoop = new ApplyLoop({
        step: async () => {
          if (work > 0) {
            work--;
            return 'changed';
          }
          // Nothing to do: and just then, in another chain of promises, an answer comes in.
          if (!arrived) {
            arrived = true;
            afterMicrotasks(hops, () => {
              work++;
              loop.kick();
            });
          }
          return 'idle';
        },
        onFailure: () => undefined,
        backoff: { initialMs: 1, maxMs: 1 },
      });
      loop.kick();
      for (let turn = 0; turn < 3; turn++) {
        await loop.settled();
        await new Promise((resolve) => setImmediate(resolve));
      }
      lost.push(...(work ? [hops] : []));
    }
    expect(lost).toEqual([]);
  });
});
