/**
 * Who is closed first when the firewall is full. Pure bookkeeping, no time of its own.
 *
 * Two bounds keep one hostile or broken answer stream from pushing everyone else out:
 * - --max-ips bounds the addresses open at once. When it is reached, the address closest
 *   to expiry is closed, taken from the group (the pattern that opened it) that holds the
 *   most addresses: a wildcard flooded with fresh names evicts its own addresses once it
 *   holds the largest share, never the few that other patterns opened (max-min fairness).
 * - --max-ips-per-name bounds the addresses one name may hold open (Cilium keeps about a
 *   thousand per name): a name answered with ever new addresses recycles its own oldest.
 *
 * Heaps are lazy: a refreshed or closed address leaves a stale item behind, which `isLive`
 * recognises and skips; a heap is rebuilt when stale items outnumber live ones.
 */
import { ExpiryHeap } from './expiry.js';

export interface Held {
  address: string;
  expiresAt: number;
  /** The eviction group: the pattern that opened it ('' when unknown, e.g. adopted after a restart). */
  group: string;
  /** The name that opened it, for the per-name bound. */
  name?: string;
}

export class Limits {
  /** Soonest expiry first, across every group: what the expiry timer needs. */
  private readonly all = new ExpiryHeap();
  private readonly byGroup = new Map<string, { heap: ExpiryHeap; size: number }>();
  /** Per name, its addresses in the order they were last opened or refreshed (oldest first). */
  private readonly byName = new Map<string, Set<string>>();

  constructor(private readonly isLive: (item: { address: string; expiresAt: number }, group?: string) => boolean) {}

  add(held: Held): void {
    this.all.push(held.expiresAt, held.address);
    let group = this.byGroup.get(held.group);
    if (!group) this.byGroup.set(held.group, (group = { heap: new ExpiryHeap(), size: 0 }));
    group.heap.push(held.expiresAt, held.address);
    group.size++;
    if (held.name !== undefined) {
      let addresses = this.byName.get(held.name);
      if (!addresses) this.byName.set(held.name, (addresses = new Set()));
      addresses.delete(held.address);
      addresses.add(held.address);
    }
  }

  remove(held: Held): void {
    const group = this.byGroup.get(held.group);
    if (group && --group.size === 0) this.byGroup.delete(held.group);
    if (held.name !== undefined) {
      const addresses = this.byName.get(held.name);
      addresses?.delete(held.address);
      if (addresses?.size === 0) this.byName.delete(held.name);
    }
  }

  /** How many addresses `name` holds open. */
  countFor(name: string): number {
    return this.byName.get(name)?.size ?? 0;
  }

  /** The address `name` opened or refreshed longest ago. */
  oldestOf(name: string): string | undefined {
    return this.byName.get(name)?.values().next().value;
  }

  /** The live item closest to expiry, over all groups. */
  soonest(): { address: string; expiresAt: number } | undefined {
    return this.peekLive(this.all);
  }

  /** The address to close to make room: the one closest to expiry in the largest group. */
  victim(): string | undefined {
    let largest: { heap: ExpiryHeap; size: number; name: string } | undefined;
    for (const [name, group] of this.byGroup) if (!largest || group.size > largest.size) largest = { ...group, name };
    return largest ? this.peekLive(largest.heap, largest.name)?.address : undefined;
  }

  /** Drop stale items once they outnumber the live ones, so memory follows what is open. */
  compact(live: () => Iterable<Held>, liveCount: number): void {
    if (this.all.size <= 2 * liveCount + 1024) return;
    this.all.clear();
    for (const group of this.byGroup.values()) group.heap.clear();
    for (const held of live()) {
      this.all.push(held.expiresAt, held.address);
      this.byGroup.get(held.group)?.heap.push(held.expiresAt, held.address);
    }
  }

  private peekLive(heap: ExpiryHeap, group?: string) {
    for (let top = heap.peek(); top; top = heap.peek()) {
      if (this.isLive(top, group)) return top;
      heap.pop();
    }
    return undefined;
  }
}
