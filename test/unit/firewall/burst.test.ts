/**
 * A burst larger than the queue: every address is accounted for (open, evicted or dropped
 * and counted), the queue never grows past its bound, and the log says so in a few lines.
 * The kernel's slowness and the answers' pace are both on one FakeClock, so how far the
 * kernel falls behind is the same on any machine.
 */
import { describe, expect, it } from 'vitest';
import type { Entry, FirewallBackend } from '../../../src/firewall/backend.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { SUMMARY_INTERVAL_MS } from '../../../src/util/log-summary.js';
import { sleep } from '../../../src/util/clock.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

/** Answers come 2,000 to a socket read, one read every CHUNK_MS; the kernel takes KERNEL_MS a transaction, four reads' worth. */
const CHUNK = 2_000;
const CHUNK_MS = 100;
const KERNEL_MS = 400;

/** A kernel that takes KERNEL_MS per transaction on `clock`, far slower than answers arrive. */
function slowBackend(clock: FakeClock) {
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
      await sleep(clock, KERNEL_MS);
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
    const clock = new FakeClock();
    const { backend, installed } = slowBackend(clock);
    const { log, lines } = recordingLogger('warn');
    const maxPending = 6_000;
    const firewall = new Firewall({ backend, log, clock, maxPending, maxIps: 5_000, maxIpsPerName: 100_000 });
    await firewall.start();
    const total = 100_000;
    const results: Record<string, number> = {};
    const began = clock.now();
    for (let i = 0; i < total; i++) {
      const result = firewall.allow(address(i), 'burst.test.', 300);
      results[result] = (results[result] ?? 0) + 1;
      if (i % CHUNK === CHUNK - 1) await clock.advance(CHUNK_MS);
    }
    let settled = false;
    void firewall.settled().then(() => (settled = true));
    while (!settled) await clock.advance(KERNEL_MS);
    firewall.stop();
    const seconds = Math.ceil((clock.now() - began) / SUMMARY_INTERVAL_MS);

    expect(results).toEqual({ queued: total - firewall.stats.droppedFromQueue, dropped: firewall.stats.droppedFromQueue });
    expect(firewall.stats.droppedFromQueue).toBeGreaterThan(0);
    expect(seconds).toBeGreaterThanOrEqual(5); // long enough for the summaries' windows to matter
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
