/**
 * A burst of 100,000 answers through a real socket into the daemon, against a kernel that
 * takes 20 ms per transaction: the reader never waits for the kernel, every frame is read
 * and decided, the queue stays within its bound, every address is accounted for, and the
 * log stays short.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import type { IptablesRunner } from '../../../src/firewall/iptables.js';
import { clientResponse } from '../../support/dnstap.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer } from '../../support/socket.js';

let dir: string;
let daemon: Daemon | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-burst-'));
});
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await rm(dir, { recursive: true, force: true });
});

const TOTAL = 100_000;
const MAX_IPS = 20_000;

/** The fake kernel installs the base rules; after that each restore only takes its 20 ms. */
function slowKernel(): { runner: IptablesRunner; restores: () => number } {
  const kernel = fakeIptables();
  let restores = 0;
  return {
    runner: {
      list: () => kernel.runner.list(),
      async restore(script) {
        if (restores++ === 0) return kernel.runner.restore(script);
        await sleep(20);
      },
    },
    restores: () => restores,
  };
}

/** 100,000 answers for distinct public addresses, built from one frame by patching its A record. */
function answers(): Buffer[] {
  const template = clientResponse('192.0.2.10', 'burst.test', [{ type: 'A', name: 'burst.test', data: '20.0.0.0', ttl: 600 }]);
  const at = template.lastIndexOf(Buffer.from([20, 0, 0, 0]));
  return Array.from({ length: TOTAL }, (_, i) => {
    const frame = Buffer.from(template);
    frame.writeUInt8((i >> 16) & 255, at + 1);
    frame.writeUInt8((i >> 8) & 255, at + 2);
    frame.writeUInt8(i & 255, at + 3);
    return frame;
  });
}

describe('a burst of 100,000 answers', () => {
  it('is read and decided in full while a slow kernel catches up; drops and evictions are counted and summarised', async () => {
    const kernel = slowKernel();
    const { log, lines } = recordingLogger('warn');
    const config = parseConfig(
      ['--interface', 'br0', '--listen', join(dir, 'dnstap.sock'), '--max-ips', String(MAX_IPS), '--max-ips-per-name', String(TOTAL), '--reconcile-interval', '0', 'burst.test.'],
      {},
    );
    const began = Date.now();
    daemon = await startDaemon(config, { runner: kernel.runner, log });
    const producer = await connectProducer(join(dir, 'dnstap.sock'));
    await producer.write(bidirectionalStream(answers()));
    await producer.closed;
    expect(daemon.listener!.stats.dataFrames).toBe(TOTAL);
    expect(daemon.stats).toEqual({ decisions: { allow: TOTAL, deny: 0, skip: 0 }, decodeErrors: 0, allowsByPattern: new Map([['default', new Map([['burst.test.', TOTAL]])]]) });

    const { firewall } = daemon;
    await firewall.settled();
    // One restore or more per batch (a batch is cut to what the chain's length lets one restore do), + the base rules.
    expect(kernel.restores()).toBeGreaterThanOrEqual(firewall.stats.applies + 1);
    expect(kernel.restores()).toBeLessThan(2 * firewall.stats.applies + 1);
    expect(firewall.stats.peakPending).toBeLessThanOrEqual(100_000 + 1);
    expect(firewall.allowedCount).toBe(MAX_IPS);
    expect(firewall.allowedCount + firewall.stats.evicted + firewall.stats.droppedFromQueue).toBe(TOTAL);
    expect(firewall.stats.evicted).toBe(TOTAL - MAX_IPS);

    await daemon.close();
    daemon = undefined;
    const evictLines = lines.filter((l) => l.msg.startsWith('address limit reached'));
    expect(evictLines.reduce((sum, l) => sum + (typeof l.repeated === 'number' ? l.repeated : 1), 0)).toBe(TOTAL - MAX_IPS);
    // About one summary line per second, not one per address; the rest are start-up lines.
    const seconds = Math.ceil((Date.now() - began) / 1000);
    expect(evictLines.length).toBeLessThanOrEqual(seconds + 2);
    expect(lines.length - evictLines.length).toBeLessThan(5);
  }, 60_000);
});
