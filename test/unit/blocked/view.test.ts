import { describe, expect, it } from 'vitest';
import { BlockedView } from '../../../src/blocked/view.js';
import type { BlockedAttempt } from '../../../src/firewall/blocked.js';

const attempt = (over: Partial<BlockedAttempt> = {}): BlockedAttempt => ({ client: '192.0.2.10', address: '198.51.100.7', protocol: 'tcp', port: 443, packets: 3, idleSeconds: 0, ...over });
const who = { policy: 'default', audit: false, container: 'web', answer: undefined };

describe('BlockedView', () => {
  it('adds a destination once, then counts its packets and moves its last sighting', () => {
    const view = new BlockedView();
    const first = view.add(attempt({ idleSeconds: 2 }), who, 10_000);
    expect(first).toMatchObject({ client: '192.0.2.10', container: 'web', address: '198.51.100.7', protocol: 'tcp', port: 443, count: 3, firstSeen: 8_000, lastSeen: 8_000 });
    expect(view.add(attempt({ packets: 2 }), who, 15_000)).toBeUndefined();
    expect(view.list()).toEqual([expect.objectContaining({ count: 5, firstSeen: 8_000, lastSeen: 15_000 })]);
    expect(view.packetsByPolicy.get('default')).toBe(5);
  });

  it('keeps one entry per client, protocol, port and address', () => {
    const view = new BlockedView();
    for (const a of [attempt(), attempt({ port: 80 }), attempt({ protocol: 'udp' }), attempt({ client: '192.0.2.11' }), attempt({ address: '198.51.100.8' })]) {
      expect(view.add(a, who, 0)).toBeDefined();
    }
    expect(view.size).toBe(5);
  });

  it('lists the most recent first', () => {
    const view = new BlockedView();
    view.add(attempt({ port: 1 }), who, 1_000);
    view.add(attempt({ port: 2 }), who, 3_000);
    view.add(attempt({ port: 3 }), who, 2_000);
    expect(view.list().map((e) => e.port)).toEqual([2, 3, 1]);
  });

  it('takes the latest owner of a client address (a new container there) and keeps the name it had when the new read has none', () => {
    const view = new BlockedView();
    view.add(attempt(), { ...who, answer: { name: 'x.test.', allowed: false, client: '192.0.2.10', at: 0 } }, 0);
    view.add(attempt(), { policy: 'ci', audit: true, container: 'runner', answer: undefined }, 1);
    expect(view.list()[0]).toMatchObject({ policy: 'ci', audit: true, container: 'runner', answer: { name: 'x.test.' } });
  });

  it('stays within its bound under a flood of one-off destinations, keeping the ones blocked most often', () => {
    const view = new BlockedView(1_000);
    view.add(attempt({ address: '198.51.100.1', packets: 500 }), who, 0); // the real problem, seen early
    for (let i = 0; i < 50_000; i++) view.add(attempt({ client: '192.0.2.66', address: `10.${(i >> 8) & 255}.${i & 255}.1`, packets: 1 }), who, i + 1);
    expect(view.size).toBeLessThanOrEqual(1_000);
    expect(view.list().some((e) => e.address === '198.51.100.1')).toBe(true);
    // The flood's own latest survive, its oldest are gone.
    expect(view.list()[0]!.lastSeen).toBe(50_000);
    expect(view.list().some((e) => e.address === '10.0.0.1')).toBe(false);
    expect(view.packetsByPolicy.get('default')).toBe(50_500);
  });

  it('when every entry is as frequent, goes by age alone', () => {
    const view = new BlockedView(10);
    for (let i = 0; i < 30; i++) view.add(attempt({ port: i + 1, packets: 1 }), who, i);
    expect(view.size).toBeLessThanOrEqual(10);
    expect(Math.min(...view.list().map((e) => e.port))).toBeGreaterThan(20);
  });
});
