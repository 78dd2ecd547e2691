import { describe, expect, it } from 'vitest';
import { RecentAnswers } from '../../../src/blocked/recent-answers.js';

describe('RecentAnswers', () => {
  it("names an address by the latest answer to that client, else by anyone's latest", () => {
    const answers = new RecentAnswers();
    answers.record('192.0.2.10', 'tracker.test.', ['198.51.100.7', '2001:db8::7'], false, 1_000);
    answers.record('192.0.2.11', 'cdn.test.', ['198.51.100.7'], true, 2_000);
    expect(answers.nameFor('192.0.2.10', '198.51.100.7')).toEqual({ name: 'tracker.test.', allowed: false, client: '192.0.2.10', at: 1_000 });
    expect(answers.nameFor('192.0.2.10', '2001:db8::7')?.name).toBe('tracker.test.');
    // Nobody asked for .12 as itself: the host's answer (no --dns) or a neighbour's is better than nothing, and says whose it was.
    expect(answers.nameFor('192.0.2.12', '198.51.100.7')).toMatchObject({ name: 'cdn.test.', client: '192.0.2.11' });
    expect(answers.nameFor('192.0.2.10', '198.51.100.99')).toBeUndefined();
  });

  it('keeps the latest answer for an address, allowed or denied', () => {
    const answers = new RecentAnswers();
    answers.record('192.0.2.10', 'a.test.', ['198.51.100.7'], true, 1);
    answers.record('192.0.2.10', 'b.test.', ['198.51.100.7'], false, 2);
    expect(answers.nameFor('192.0.2.10', '198.51.100.7')).toMatchObject({ name: 'b.test.', allowed: false });
  });

  it('stays within its bound under a flood of answers, dropping the least recent first', () => {
    const answers = new RecentAnswers(100);
    answers.record('192.0.2.10', 'keep.test.', ['198.51.100.1'], false, 0);
    for (let i = 0; i < 10_000; i++) {
      answers.record('192.0.2.66', `flood${i}.test.`, [`10.${(i >> 8) & 255}.${i & 255}.1`], false, i);
      if (i % 50 === 0) answers.record('192.0.2.10', 'keep.test.', ['198.51.100.1'], false, i); // asked again now and then
    }
    expect(answers.size).toBeLessThanOrEqual(100);
    expect(answers.nameFor('192.0.2.10', '198.51.100.1')?.name).toBe('keep.test.');
    expect(answers.nameFor('192.0.2.66', '10.0.0.1')).toBeUndefined();
  });
});
