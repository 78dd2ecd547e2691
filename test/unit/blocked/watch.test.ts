import { afterEach, describe, expect, it } from 'vitest';
import { RecentAnswers } from '../../../src/blocked/recent-answers.js';
import { BlockedView } from '../../../src/blocked/view.js';
import { LINES_PER_READ, NAME_GRACE_MS, watchBlocked, type BlockedWatch } from '../../../src/blocked/watch.js';
import type { BlockedAttempt, BlockedReader } from '../../../src/firewall/blocked.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';

/** A kernel record the test fills; drain empties it, as the real sets are flushed. */
function kernel(family: 4 | 6 = 4) {
  let held: BlockedAttempt[] = [];
  let failing: Error | undefined;
  const reader: BlockedReader = {
    family,
    async drain() {
      if (failing) throw failing;
      const out = held;
      held = [];
      return out;
    },
  };
  return { reader, hold: (...a: BlockedAttempt[]) => held.push(...a), fail: (err?: Error) => (failing = err) };
}

const attempt = (over: Partial<BlockedAttempt> = {}): BlockedAttempt => ({ client: '192.0.2.10', address: '198.51.100.7', protocol: 'tcp', port: 443, packets: 1, idleSeconds: 0, ...over });

describe('watchBlocked', () => {
  let watch: BlockedWatch | undefined;
  afterEach(() => watch?.stop());

  function start(readers: BlockedReader[]) {
    const clock = new FakeClock();
    const { log, lines } = recordingLogger();
    const view = new BlockedView();
    const answers = new RecentAnswers();
    watch = watchBlocked({
      readers: () => readers,
      view,
      answers,
      who: (client) => ({ policy: client === '192.0.2.11' ? 'ci' : 'default', audit: client === '192.0.2.11', container: client === '192.0.2.10' ? 'web' : undefined }),
      intervalMs: 5_000,
      clock,
      log,
    });
    return { clock, lines, view, answers };
  }

  it('reads every interval, names each new destination once by the answer that led there, and only counts it after', async () => {
    const k = kernel();
    const { clock, lines, view, answers } = start([k.reader]);
    answers.record('192.0.2.10', 'tracker.test.', ['198.51.100.7'], false, clock.now());
    k.hold(attempt({ packets: 3 }));
    await clock.advance(4_999);
    expect(view.size).toBe(0); // not read before its time
    await clock.advance(1);
    expect(lines.filter((l) => l.msg === 'blocked')).toEqual([
      expect.objectContaining({ client: '192.0.2.10', container: 'web', policy: 'default', address: '198.51.100.7', protocol: 'tcp', port: 443, name: 'tracker.test.', nameAllowed: false }),
    ]);
    k.hold(attempt({ packets: 2 }));
    await clock.advance(5_000);
    expect(lines.filter((l) => l.msg === 'blocked')).toHaveLength(1);
    expect(view.list()[0]).toMatchObject({ count: 5, answer: { name: 'tracker.test.' } });
  });

  it('says "would block" for a client whose policy is in audit mode, and null for a hard-coded address', async () => {
    const k = kernel();
    const { clock, lines } = start([k.reader]);
    k.hold(attempt({ client: '192.0.2.11', address: '203.0.113.10' }));
    await clock.advance(5_000);
    // No answer names it yet: said at the first read after NAME_GRACE_MS (watch.ts).
    expect(lines.find((l) => l.msg === 'would block (audit)')).toBeUndefined();
    await clock.advance(Math.ceil(NAME_GRACE_MS / 5_000) * 5_000);
    expect(lines.find((l) => l.msg === 'would block (audit)')).toMatchObject({ policy: 'ci', container: null, name: null });
  });

  it('says a flood of new destinations in a few lines and one summary per read', async () => {
    const k = kernel();
    const { clock, lines, view } = start([k.reader]);
    for (let i = 0; i < 500; i++) k.hold(attempt({ port: i + 1 }));
    await clock.advance(5_000 + Math.ceil(NAME_GRACE_MS / 5_000) * 5_000);
    expect(view.size).toBe(500);
    expect(lines.filter((l) => l.msg === 'blocked')).toHaveLength(LINES_PER_READ);
    expect(lines.filter((l) => String(l.msg).includes('more new blocked destinations'))).toEqual([expect.objectContaining({ more: 500 - LINES_PER_READ })]);
  });

  it('reads both families, says once that one cannot be read, keeps reading the other, and says when it can again', async () => {
    const [v4, v6] = [kernel(4), kernel(6)];
    const { clock, lines, view } = start([v4.reader, v6.reader]);
    v6.fail(new Error('nft: No such file or directory'));
    for (let i = 0; i < 3; i++) {
      v4.hold(attempt({ port: i + 1 }));
      await clock.advance(5_000);
    }
    expect(view.size).toBe(3);
    expect(lines.filter((l) => l.msg.startsWith('cannot read the blocked attempts'))).toEqual([expect.objectContaining({ family: 6 })]);
    v6.fail(undefined);
    await clock.advance(5_000);
    expect(lines.filter((l) => l.msg === 'reading blocked attempts again')).toHaveLength(1);
  });

  it('reads now when asked, and never again once stopped', async () => {
    const k = kernel();
    const { clock, view } = start([k.reader]);
    k.hold(attempt());
    await watch!.read();
    expect(view.size).toBe(1);
    watch!.stop();
    k.hold(attempt({ port: 80 }));
    await clock.advance(60_000);
    expect(view.size).toBe(1);
    expect(clock.pending).toBe(0);
  });
});
