/**
 * Expiry arithmetic, pure. An address lives for its answer's TTL (never less than the
 * floor) plus a grace period, counted in wall-clock seconds so that the deadline written
 * into the kernel still means the same thing after a restart.
 */
export interface ExpiryPolicy {
  /** Seconds: answers with a shorter TTL count as this long. */
  minTtl: number;
  /** Seconds added to every lifetime, for clients that keep an address past its TTL. */
  ttlGrace: number;
}

/**
 * Defaults, argued in the README: 5 minutes of floor covers resolvers and language
 * runtimes that cache past a short TTL (JVM 30 s, curl 60 s, nginx until reload), and
 * 10 minutes of grace lets a client that just got the answer finish its work.
 */
export const EXPIRY_DEFAULTS: ExpiryPolicy = { minTtl: 300, ttlGrace: 600 };

/**
 * The longest TTL counted, as resolvers cap it (unbound's cache-max-ttl, BIND's
 * max-cache-ttl: one day): an answer claiming years must not open an address for years.
 */
export const MAX_TTL = 86_400;

/** When an answer with `ttl` seen at `nowSeconds` stops holding its address open. */
export function expiryFor(nowSeconds: number, ttl: number, policy: ExpiryPolicy): number {
  return Math.ceil(nowSeconds) + Math.max(Math.min(ttl, MAX_TTL), policy.minTtl) + policy.ttlGrace;
}

/**
 * Rewriting a kernel rule for every repeat answer would cost an exec per answer, so a
 * stored expiry is only moved when it lags the new one by half the grace (at least one
 * second): an address then stays open at least TTL + grace/2 after its latest answer.
 */
export function refreshStep(policy: ExpiryPolicy): number {
  return Math.max(1, Math.floor(policy.ttlGrace / 2));
}

export function needsRefresh(stored: number | undefined, next: number, policy: ExpiryPolicy): boolean {
  return stored === undefined || next - stored >= refreshStep(policy);
}

interface HeapItem {
  expiresAt: number;
  address: string;
  /** Insertion order: of two equal deadlines the older entry comes out first. */
  seq: number;
}

const before = (a: HeapItem, b: HeapItem): boolean => a.expiresAt < b.expiresAt || (a.expiresAt === b.expiresAt && a.seq < b.seq);

/**
 * A min-heap of (expiresAt, address), soonest first and oldest first among equals. A
 * refreshed address is pushed again; the caller skips items that no longer match.
 */
export class ExpiryHeap {
  private readonly items: HeapItem[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(expiresAt: number, address: string): void {
    const items = this.items;
    items.push({ expiresAt, address, seq: this.seq++ });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[parent], items[i]] = [items[i]!, items[parent]!];
      i = parent;
    }
  }

  peek(): HeapItem | undefined {
    return this.items[0];
  }

  pop(): HeapItem | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || !last) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && before(items[left]!, items[smallest]!)) smallest = left;
      if (right < items.length && before(items[right]!, items[smallest]!)) smallest = right;
      if (smallest === i) break;
      [items[smallest], items[i]] = [items[i]!, items[smallest]!];
      i = smallest;
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}
