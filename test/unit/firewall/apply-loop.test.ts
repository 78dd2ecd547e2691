import { describe, expect, it } from 'vitest';
import { ApplyLoop } from '../../../src/firewall/apply-loop.js';

/** Run `f` after `hops` turns of the microtask queue. */
function afterMicrotasks(hops: number, f: () => void): void {
  if (hops === 0) return f();
  queueMicrotask(() => afterMicrotasks(hops - 1, f));
}

describe('ApplyLoop', () => {
  it('runs again for work that arrives while its last step is finding nothing to do, however late in that step', async () => {
    const lost: number[] = [];
    for (let hops = 0; hops <= 6; hops++) {
      let work = 1;
      let arrived = false;
      const loop: ApplyLoop = new ApplyLoop({
        step: async () => {
          if (work > 0) {
            work--;
            return true;
          }
          // Nothing to do: and just then, in another chain of promises, an answer comes in.
          if (!arrived) {
            arrived = true;
            afterMicrotasks(hops, () => {
              work++;
              loop.kick();
            });
          }
          return false;
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
