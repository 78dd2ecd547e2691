/**
 * The blocked view: every (client, destination, protocol, port) the kernel recorded as
 * blocked, with who the client is (policy, container), the name that led there, how many
 * packets and when. Pure bookkeeping, `now` passed in; fed by blocked/watch.ts.
 *
 * Bounded: past `max` entries a tenth goes at once, least recently seen first, except the
 * quarter most often blocked, which a flood of one-off destinations must not push out.
 */
import type { BlockedAttempt } from '../firewall/blocked.js';
import type { Answered } from './recent-answers.js';

export interface BlockedEntry {
  client: string;
  container: string | undefined;
  policy: string;
  /** True when the client's policy is in audit mode: the attempt was let through. */
  audit: boolean;
  address: string;
  protocol: 'tcp' | 'udp';
  port: number;
  /** The latest answer that carried the address, if any: denied, or allowed (then the port, or the lifetime, was the problem). */
  answer: Answered | undefined;
  count: number;
  /** Milliseconds since the epoch. */
  firstSeen: number;
  lastSeen: number;
}

/** Who a client is, when its attempt is recorded. */
export interface AttemptContext {
  policy: string;
  audit: boolean;
  container: string | undefined;
  answer: Answered | undefined;
}

export const MAX_BLOCKED = 10_000;

export class BlockedView {
  private readonly entries = new Map<string, BlockedEntry>();
  /** Packets recorded per policy since the start, evicted entries included (for /metrics). */
  readonly packetsByPolicy = new Map<string, number>();

  constructor(private readonly max = MAX_BLOCKED) {}

  /** The most entries kept. */
  get bound(): number {
    return this.max;
  }

  get size(): number {
    return this.entries.size;
  }

  /** One drained element: a new entry (returned, to be said once) or more packets on one already seen. */
  add(attempt: BlockedAttempt, context: AttemptContext, now: number): BlockedEntry | undefined {
    const key = `${attempt.client} ${attempt.protocol}/${attempt.port} ${attempt.address}`;
    const lastSeen = now - attempt.idleSeconds * 1000;
    this.packetsByPolicy.set(context.policy, (this.packetsByPolicy.get(context.policy) ?? 0) + attempt.packets);
    const known = this.entries.get(key);
    if (known) {
      known.count += attempt.packets;
      known.lastSeen = Math.max(known.lastSeen, lastSeen);
      // The client may have changed hands (a new container at the address): the latest owner's.
      Object.assign(known, { policy: context.policy, audit: context.audit, container: context.container, answer: context.answer ?? known.answer });
      return undefined;
    }
    const entry: BlockedEntry = {
      client: attempt.client,
      container: context.container,
      policy: context.policy,
      audit: context.audit,
      address: attempt.address,
      protocol: attempt.protocol,
      port: attempt.port,
      answer: context.answer,
      count: attempt.packets,
      firstSeen: lastSeen,
      lastSeen,
    };
    this.entries.set(key, entry);
    if (this.entries.size > this.max) this.evict();
    return entry;
  }

  /** Most recent first. */
  list(): BlockedEntry[] {
    return [...this.entries.values()].sort((a, b) => b.lastSeen - a.lastSeen || b.count - a.count);
  }

  private evict(): void {
    const all = [...this.entries];
    const counts = all.map(([, e]) => e.count).sort((a, b) => b - a);
    const protectedFrom = counts[Math.floor(this.max / 4)] ?? Infinity;
    const byAge = all.sort(([, a], [, b]) => a.lastSeen - b.lastSeen);
    let toGo = this.entries.size - this.max + Math.ceil(this.max / 10);
    for (const pass of [true, false]) {
      for (const [key, entry] of byAge) {
        if (toGo <= 0) return;
        if (pass && entry.count > protectedFrom) continue;
        if (this.entries.delete(key)) toGo--;
      }
    }
  }
}
