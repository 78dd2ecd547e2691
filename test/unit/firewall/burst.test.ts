/**
 * A burst larger than the queue: every address is accounted for (open, evicted or dropped
 * and counted), the queue never grows past its bound, and the log says so in a few lines.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Entry, FirewallBackend } from '../../../src/firewall/backend.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

/** A kernel that takes 20 ms per transaction, far slower than answers arrive. */
function slowBackend() {
  const installed = new Set<string>();
  const backend: FirewallBackend & { applies: number } = {
    applies: 0,
    where: 'in a test',
    async sync() {
      return { adopted: [], rebuilt: true };
    },
    layout: testLayout('br0', [443]),
    moveTo: async () => ({ adopted: [], rebuilt: true }),
    async apply(add: readonly Entry[], remove: readonly Entry[]) {
      await sleep(20);
      this.applies++;
      for (const e of remove) installed.delete(e.address);
      for (const e of add) installed.add(e.address);
    },
  };
  return { backend, installed };
}

const address = (i: number) => `20.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

describe('a burst against a slow kernel', () => {
  it('drops beyond maxPending and evicts beyond maxIps, counting all of it in a few log lines', async () => {
    const { backend, installed } = slowBackend();
    const { log, lines } = recordingLogger('warn');
    const maxPending = 6_000;
    const firewall = new Firewall({ backend, log, maxPending, maxIps: 5_000, maxIpsPerName: 100_000 });
    await firewall.start();
    const total = 100_000;
    const results: Record<string, number> = {};
    const began = Date.now();
    for (let i = 0; i < total; i++) {
      const result = firewall.allow(address(i), 'burst.test.', 300);
      results[result] = (results[result] ?? 0) + 1;
      if (i % 2_000 === 1_999) await new Promise((r) => setImmediate(r)); // answers arrive in socket-sized chunks
    }
    await firewall.settled();
    firewall.stop();
    const seconds = Math.ceil((Date.now() - began) / 1000);

    expect(results).toEqual({ queued: total - firewall.stats.droppedFromQueue, dropped: firewall.stats.droppedFromQueue });
    expect(firewall.stats.droppedFromQueue).toBeGreaterThan(0);
    expect(firewall.stats.evicted).toBeGreaterThan(0);
    expect(firewall.allowedCount + firewall.stats.evicted + firewall.stats.droppedFromQueue).toBe(total);
    expect(installed.size).toBe(firewall.allowedCount);
    expect(firewall.allowedCount).toBeLessThanOrEqual(5_000);
    // One eviction may join the queue with the address that caused it.
    expect(firewall.stats.peakPending).toBeLessThanOrEqual(maxPending + 1);
    // At most one line per second per kind (plus each kind's first), however many addresses.
    const dropLines = lines.filter((l) => l.msg.startsWith('firewall queue full'));
    const evictLines = lines.filter((l) => l.msg.startsWith('address limit reached'));
    expect(dropLines.length).toBeGreaterThan(0);
    expect(dropLines.length).toBeLessThanOrEqual(seconds + 2);
    expect(evictLines.length).toBeLessThanOrEqual(seconds + 2);
    expect(dropLines.at(-1)).toMatchObject({ dropped: firewall.stats.droppedFromQueue });
    const summed = (ls: typeof lines) => ls.reduce((sum, l) => sum + (typeof l.repeated === 'number' ? l.repeated : 1), 0);
    expect(summed(dropLines)).toBe(firewall.stats.droppedFromQueue);
    expect(summed(evictLines)).toBe(firewall.stats.evicted);
  });
});
