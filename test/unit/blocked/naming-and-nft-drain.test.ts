/**
 * What the namespace suites found in the blocked view's reading: a destination is said
 * once its answer had time to come, and the nftables drain reads each element once and
 * removes exactly what it read.
 */
import { describe, expect, it } from 'vitest';
import { RecentAnswers } from '../../../src/blocked/recent-answers.js';
import { BlockedView } from '../../../src/blocked/view.js';
import { NAME_GRACE_MS, watchBlocked } from '../../../src/blocked/watch.js';
import type { BlockedAttempt, BlockedReader } from '../../../src/firewall/blocked.js';
import { nftBlockedReader, parseBlockedSet } from '../../../src/firewall/nft/blocked.js';
import type { NftRunner } from '../../../src/firewall/nft/runner.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';

const attempt = (address: string, port = 443): BlockedAttempt => ({ client: '192.0.2.10', address, protocol: 'tcp', port, packets: 1, idleSeconds: 0 });

describe('naming a blocked destination whose answer comes after the connection', () => {
  const setup = () => {
    const queue: BlockedAttempt[][] = [];
    const reader: BlockedReader = { family: 4, drain: async () => queue.shift() ?? [] };
    const clock = new FakeClock();
    const answers = new RecentAnswers();
    const view = new BlockedView();
    const { log, lines } = recordingLogger();
    const watch = watchBlocked({ readers: () => [reader], view, answers, who: () => ({ policy: 'default', audit: true, container: undefined }), intervalMs: 1_000, clock, log });
    const said = () => lines.filter((l) => l.component === undefined && /block/.test(l.msg));
    return { queue, clock, answers, view, watch, said };
  };

  it('waits for the answer (dnstap can come after the client connected), then says it once with its name', async () => {
    const { queue, clock, answers, view, watch, said } = setup();
    queue.push([attempt('203.0.113.10')]);
    await watch.read();
    expect(said()).toEqual([]);
    answers.record('192.0.2.10', 'denied.test.', ['203.0.113.10'], false, clock.now());
    await watch.read();
    expect(said()).toEqual([expect.objectContaining({ msg: 'would block (audit)', name: 'denied.test.', nameAllowed: false })]);
    expect(view.list()[0]!.answer?.name).toBe('denied.test.');
    await watch.read();
    expect(said()).toHaveLength(1);
    watch.stop();
  });

  it('says a destination no answer names as hard-coded once NAME_GRACE_MS went by', async () => {
    const { queue, clock, watch, said } = setup();
    queue.push([attempt('198.51.100.12', 80)]);
    await watch.read();
    await clock.advance(NAME_GRACE_MS - 1);
    await watch.read();
    expect(said()).toEqual([]);
    await clock.advance(1);
    await watch.read();
    expect(said()).toEqual([expect.objectContaining({ address: '198.51.100.12', name: null })]);
    watch.stop();
  });
});

describe('the nftables drain', () => {
  const element = (address: string, packets: number) => ({ elem: { val: { concat: ['192.0.2.10', address, 'udp', 20000] }, expires: 599, counter: { packets, bytes: 33 * packets } } });
  const listing = (...elements: unknown[]) => JSON.stringify({ nftables: [{ metainfo: {} }, { set: { name: 'blocked4', elem: elements } }] });

  it('reads an element a growing set listed twice once', () => {
    expect(parseBlockedSet(listing(element('203.0.113.1', 1), element('203.0.113.2', 1), element('203.0.113.1', 1))).map((a) => a.address)).toEqual(['203.0.113.1', '203.0.113.2']);
  });

  it('deletes the elements it read, by key, and flushes only when that fails', async () => {
    const applied: string[] = [];
    let fail = false;
    const runner = {
      listSet: async () => listing(element('203.0.113.1', 2), element('203.0.113.2', 1)),
      apply: async (script: string) => {
        applied.push(script);
        if (fail && script.startsWith('delete')) throw new Error('Could not process rule: No such file or directory');
      },
    } as unknown as NftRunner;
    const reader = nftBlockedReader(runner, 4);
    expect((await reader.drain()).map((a) => a.packets)).toEqual([2, 1]);
    expect(applied).toEqual(['delete element inet on-his-name blocked4 { 192.0.2.10 . 203.0.113.1 . udp . 20000, 192.0.2.10 . 203.0.113.2 . udp . 20000 }\n']);
    fail = true;
    await reader.drain();
    expect(applied.slice(1)).toEqual([expect.stringMatching(/^delete element/), 'flush set inet on-his-name blocked4\n']);
  });
});
