/**
 * The firewall's books: which addresses are wanted open and until when, which the kernel
 * holds, and what to change next. Pure: no I/O, no timers; the time is an argument.
 *
 * Two maps tell the whole story: `wanted` (every address an answer opened that has not
 * expired or been evicted) and `kernel` (what the backend last confirmed). An address whose
 * two sides differ is dirty; takeBatch() turns dirty addresses into the next kernel
 * transaction, and commit() records what the kernel took.
 *
 * The kernel never holds more than --max-ips addresses, not even for one transaction: an
 * address evicted to make room leaves in the same batch as, or before, the one that takes
 * its place.
 */
import type { Entry } from './backend.js';
import { expiryFor, needsRefresh, type ExpiryPolicy } from './expiry.js';
import { Limits } from './limits.js';

export interface Wanted extends Entry {
  expiresAt: number;
  /** The pattern that opened it: the eviction group ('' when unknown). */
  group: string;
  /** The container address that last asked for it, in this run. */
  client?: string;
}

export interface Opening {
  address: string;
  name?: string;
  ttl: number;
  group?: string;
  client?: string;
}

export type AllowResult = 'known' | 'queued' | 'refreshed' | 'dropped' | 'invalid';

/** Why an address stopped being wanted. */
export type Closed = { entry: Wanted; why: 'expired' | 'evicted' | 'name-limit' };

export interface Batch {
  add: Entry[];
  remove: Entry[];
}

export interface LedgerOptions {
  expiry: ExpiryPolicy;
  maxIps: number;
  maxIpsPerName: number;
  /** Most addresses waiting for the kernel at once; more are dropped. */
  maxPending: number;
}

/** How far an expiry read back from the kernel may be from ours and still be the same one. */
const EXPIRY_SLACK_SECONDS = 2;

/** Big enough for any real burst, small enough that one transaction stays well under a second. */
export const MAX_BATCH = 2048;

export class Ledger {
  private readonly wanted = new Map<string, Wanted>();
  private kernel = new Map<string, Entry>();
  private readonly dirty = new Set<string>();
  private readonly limits: Limits;
  /** Take turns between new addresses and rewrites when both wait. */
  private lastBatchOpened = false;

  constructor(private readonly options: LedgerOptions) {
    this.limits = new Limits((item, group) => {
      const entry = this.wanted.get(item.address);
      return entry?.expiresAt === item.expiresAt && (group === undefined || entry.group === group);
    });
  }

  get wantedCount(): number {
    return this.wanted.size;
  }

  get kernelCount(): number {
    return this.kernel.size;
  }

  get pendingCount(): number {
    return this.dirty.size;
  }

  inKernel(address: string): Entry | undefined {
    return this.kernel.get(address);
  }

  wantedEntry(address: string): Wanted | undefined {
    return this.wanted.get(address);
  }

  kernelEntries(): Entry[] {
    return [...this.kernel.values()];
  }

  wantedEntries(): Wanted[] {
    return [...this.wanted.values()];
  }

  /**
   * An answer carried `opening`: open it, or push its expiry later. Returns what happened
   * and the addresses closed to make room (the caller logs and counts them).
   */
  open(opening: Opening, nowSeconds: number): { result: AllowResult; closed: Closed[] } {
    const expiresAt = expiryFor(nowSeconds, opening.ttl, this.options.expiry);
    const current = this.wanted.get(opening.address);
    if (current && opening.client !== undefined) current.client = opening.client;
    if (current && !needsRefresh(current.expiresAt, expiresAt, this.options.expiry)) return { result: 'known', closed: [] };
    if (!current && this.dirty.size >= this.options.maxPending) return { result: 'dropped', closed: [] };
    const name = opening.name ?? current?.name;
    const closed: Closed[] = [];
    if (current) this.limits.remove(current);
    else closed.push(...this.makeRoom(name));
    const entry: Wanted = {
      address: opening.address,
      ...(name !== undefined ? { name } : {}),
      expiresAt,
      group: opening.group ?? current?.group ?? '',
      ...((opening.client ?? current?.client) !== undefined ? { client: (opening.client ?? current?.client)! } : {}),
    };
    this.want(entry);
    if (this.kernel.has(opening.address)) return { result: 'refreshed', closed };
    return { result: current ? 'known' : 'queued', closed };
  }

  /** Every wanted address whose time has come, no longer wanted. */
  expire(nowSeconds: number): Wanted[] {
    const expired: Wanted[] = [];
    for (let top = this.limits.soonest(); top && top.expiresAt <= nowSeconds; top = this.limits.soonest()) {
      expired.push(this.unwant(top.address)!);
    }
    return expired;
  }

  /** Stop wanting every address `keep` says no to (a reload took its pattern away). */
  closeWhere(keep: (entry: Wanted) => boolean): Wanted[] {
    const closing = [...this.wanted.values()].filter((entry) => !keep(entry));
    for (const entry of closing) this.unwant(entry.address);
    return closing;
  }

  /** The soonest expiry among wanted addresses, for the timer. */
  nextExpiry(): number | undefined {
    return this.limits.soonest()?.expiresAt;
  }

  /**
   * The next kernel transaction, or undefined when the kernel holds what is wanted. New
   * addresses (at most MAX_BATCH, and never more than leaves room under --max-ips) and
   * rewrites (refreshed expiries and removals, at most `rewriteLimit`) take turns when both
   * wait, so that an expiry wave never holds up an answer for long; removals that make room
   * for new addresses ride with them.
   */
  takeBatch(rewriteLimit: number): Batch | undefined {
    const opens: Entry[] = [];
    const refreshes: Entry[] = [];
    let removes: Entry[] = [];
    for (const address of this.dirty) {
      const wanted = this.wanted.get(address);
      const installed = this.kernel.get(address);
      if (wanted && !installed) {
        if (opens.length < MAX_BATCH) opens.push(wanted);
      } else if (wanted && wanted.expiresAt !== installed!.expiresAt) {
        if (refreshes.length < rewriteLimit) refreshes.push(wanted);
      } else if (!wanted && installed) {
        removes.push(installed);
      } else {
        this.dirty.delete(address);
      }
    }
    // Removals go in the kernel's order, oldest first: those are the cheapest to delete (planner.ts).
    if (removes.length > rewriteLimit) removes = this.inKernelOrder(removes).slice(0, rewriteLimit);
    const rewrites = refreshes.length + removes.length > 0;
    const room = this.options.maxIps - this.kernel.size;
    const openNow = opens.length > 0 && !(rewrites && this.lastBatchOpened) && (room > 0 || removes.length > 0);
    this.lastBatchOpened = openNow;
    if (openNow) {
      // Removals first, as many as the new addresses need to fit.
      const freeing = removes.slice(0, Math.max(0, Math.min(opens.length - room, rewriteLimit)));
      return { add: opens.slice(0, Math.max(0, room + freeing.length)), remove: freeing };
    }
    if (!rewrites) return undefined;
    return { add: refreshes.slice(0, Math.max(0, rewriteLimit - removes.length)), remove: removes };
  }

  private inKernelOrder(entries: readonly Entry[]): Entry[] {
    const position = new Map<string, number>();
    let i = 0;
    for (const address of this.kernel.keys()) position.set(address, i++);
    return [...entries].sort((a, b) => position.get(a.address)! - position.get(b.address)!);
  }

  /** The kernel took `batch`: returns the addresses newly open (not refreshed). */
  commit(batch: Batch): string[] {
    for (const entry of batch.remove) {
      this.kernel.delete(entry.address);
      if (!this.wanted.has(entry.address)) this.dirty.delete(entry.address);
    }
    const opened: string[] = [];
    for (const entry of batch.add) {
      if (!this.kernel.delete(entry.address)) opened.push(entry.address);
      // Last in the map, as the backend writes it last (planner.ts): the map keeps the kernel's order.
      this.kernel.set(entry.address, asEntry(entry));
      if (this.wanted.get(entry.address) === entry) this.dirty.delete(entry.address);
    }
    return opened;
  }

  /**
   * Take the kernel's word for what it holds. Entries we did not know are adopted (with
   * their expiry; a fresh lifetime if the rule predates expiry; closed if already
   * expired); entries we knew and it lacks are returned, and re-added if still wanted.
   */
  absorb(adopted: readonly Entry[], nowSeconds: number): { missing: string[]; closed: Closed[] } {
    const found = new Map(adopted.map((entry) => [entry.address, entry]));
    const missing = [...this.kernel.keys()].filter((address) => !found.has(address));
    this.kernel = found;
    for (const address of missing) this.dirty.add(address);
    const closed: Closed[] = [];
    for (const entry of adopted) {
      if (!this.wanted.has(entry.address) && !this.dirty.has(entry.address)) closed.push(...this.adopt(entry, nowSeconds));
      const wanted = this.wanted.get(entry.address);
      // Sets keep the seconds left, not the deadline: read back, it may be a second off.
      if (!wanted || entry.expiresAt === undefined || Math.abs(wanted.expiresAt - entry.expiresAt) > EXPIRY_SLACK_SECONDS) this.dirty.add(entry.address);
    }
    return { missing, closed };
  }

  isWanted(address: string): boolean {
    return this.wanted.has(address);
  }

  private adopt(entry: Entry, nowSeconds: number): Closed[] {
    const expiresAt = entry.expiresAt ?? expiryFor(nowSeconds, 0, this.options.expiry);
    if (expiresAt <= nowSeconds) return [];
    const closed = this.makeRoom(entry.name);
    this.want({ ...entry, expiresAt, group: '' });
    return closed;
  }

  /** Close what must go before one more address (for `name`) may open. */
  private makeRoom(name: string | undefined): Closed[] {
    const closed: Closed[] = [];
    if (name !== undefined) {
      while (this.limits.countFor(name) >= this.options.maxIpsPerName) {
        const oldest = this.limits.oldestOf(name);
        if (oldest === undefined) break;
        closed.push({ entry: this.unwant(oldest)!, why: 'name-limit' });
      }
    }
    while (this.wanted.size >= this.options.maxIps) {
      const victim = this.limits.victim();
      if (victim === undefined) break;
      closed.push({ entry: this.unwant(victim)!, why: 'evicted' });
    }
    return closed;
  }

  private want(entry: Wanted): void {
    this.wanted.set(entry.address, entry);
    this.limits.add(entry);
    this.dirty.add(entry.address);
    this.limits.compact(() => this.wanted.values(), this.wanted.size);
  }

  private unwant(address: string): Wanted | undefined {
    const entry = this.wanted.get(address);
    if (!entry) return undefined;
    this.wanted.delete(address);
    this.limits.remove(entry);
    this.dirty.add(address);
    return entry;
  }
}

/** What the kernel holds of an address: the books' own fields (group, client) stay here. */
function asEntry(entry: Entry): Entry {
  return {
    address: entry.address,
    ...(entry.name !== undefined ? { name: entry.name } : {}),
    ...(entry.expiresAt !== undefined ? { expiresAt: entry.expiresAt } : {}),
  };
}
