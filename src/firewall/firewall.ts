/**
 * The firewall: which addresses are open, for whom and until when; the backend does the
 * kernel work.
 *
 * Two maps tell the whole story: `wanted` (every address an answer opened and that has
 * not expired) and `kernel` (what the backend last confirmed). An address whose two
 * sides differ is `dirty`; one drain at a time turns dirty addresses into batches, each
 * one backend.apply() (one iptables-restore), so a burst of answers, or of expiries,
 * costs one exec, not one per address. An address counts as allowed only once the kernel
 * has it; a failed apply is logged, the kernel read again, and the batch retried with
 * backoff. A periodic reconcile reads the kernel the same way and restores what someone
 * else removed.
 *
 * Expiry deadlines are wall-clock seconds and live in the kernel (the backend keeps them
 * with each rule), so a restart adopts them; a heap orders them for the expiry timer and
 * for --max-ips, which evicts the address closest to expiry.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { LogSummary } from '../util/log-summary.js';
import type { Counters, Entry, FirewallBackend } from './backend.js';
import { EXPIRY_DEFAULTS, ExpiryHeap, expiryFor, needsRefresh, type ExpiryPolicy } from './expiry.js';
import { IptablesBackend } from './iptables-backend.js';
import type { IptablesRunner } from './iptables.js';
import type { Layout } from './planner.js';

/** The kernel side: a backend, or an iptables runner and layout for the iptables backend. */
export type KernelOptions = { backend: FirewallBackend } | { runner: IptablesRunner; layout: Layout };

export type FirewallOptions = KernelOptions & {
  log: Logger;
  /** Monotonic milliseconds, for latency; injectable for tests. */
  now?: () => number;
  /** Wall-clock unix seconds, for expiry; injectable for tests. */
  clock?: () => number;
  /** Seconds; see expiry.ts. */
  minTtl?: number;
  ttlGrace?: number;
  /** Most addresses open (or opening) at once; beyond it the one closest to expiry is closed. */
  maxIps?: number;
  /** Read the kernel this often and restore what is missing; 0 or absent: never. */
  reconcileIntervalMs?: number;
  /** Which addresses this firewall takes (default IPv4); anything else is 'invalid'. */
  isAddress?: (address: string) => boolean;
  /** Most addresses waiting for the kernel at once; more are dropped and counted. */
  maxPending?: number;
  retryDelayMs?: { first: number; max: number };
  /** Called once per address newly in the kernel, with the time since it was asked for (for a histogram). */
  onInKernel?: (latencyMs: number, count: number) => void;
};

export type AllowResult = 'known' | 'queued' | 'refreshed' | 'dropped' | 'invalid';

export interface FirewallStats {
  applies: number;
  applyFailures: number;
  addressesAllowed: number;
  droppedFromQueue: number;
  /** From an address being queued to its rules being in the kernel, for the last batch. */
  lastLatencyMs: number;
  maxLatencyMs: number;
  /** Kernel rewrites that pushed an open address's expiry later. */
  refreshes: number;
  expired: number;
  /** Closed early to stay within maxIps. */
  evicted: number;
  /** Reconciles (or retries) that found our rules damaged or missing and restored them. */
  restored: number;
  /** Failed applies since the last one that succeeded; for the health check. */
  failingApplies: number;
  /** The most addresses ever waiting for the kernel at once (the queue's high-water mark). */
  peakPending: number;
}

/** Big enough for any real burst, small enough that one restore stays well under a second. */
const MAX_BATCH = 2048;
/**
 * Refreshes and removals delete rules, and iptables-nft finds each rule to delete by
 * comparing it with the rules of the chain (bench/expiry.ts: 2 ms per deleted rule with
 * 2,000 rules in the chain, 7 ms with 6,000, 11 ms with 20,000), so they go in smaller
 * batches, taking turns with batches of new addresses so that an expiry wave never holds
 * up an answer for long.
 */
const MAX_REWRITES = 256;
const DEFAULT_MAX_PENDING = 100_000;
export const DEFAULT_MAX_IPS = 5_000;
/** Expiries due within the same second or so go out in one batch. */
const MIN_SWEEP_MS = 1_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Addresses named in one log line; the count is always there. */
const LOGGED_ADDRESSES = 20;

export class Firewall {
  readonly stats: FirewallStats = {
    applies: 0,
    applyFailures: 0,
    addressesAllowed: 0,
    droppedFromQueue: 0,
    lastLatencyMs: 0,
    maxLatencyMs: 0,
    refreshes: 0,
    expired: 0,
    evicted: 0,
    restored: 0,
    failingApplies: 0,
    peakPending: 0,
  };
  private readonly backend: FirewallBackend;
  private readonly wanted = new Map<string, Entry & { expiresAt: number }>();
  private kernel = new Map<string, Entry>();
  private readonly dirty = new Set<string>();
  /** When each address not yet in the kernel was first asked for (monotonic ms). */
  private readonly queuedAt = new Map<string, number>();
  /** Who waits for an address to reach the kernel (inline DNS holds its answer until then). */
  private readonly waiters = new Map<string, Array<(inKernel: boolean) => void>>();
  /** The container address that last asked for each wanted address; memory only, for the admin API. */
  private readonly clients = new Map<string, string>();
  private readonly heap = new ExpiryHeap();
  private readonly policy: ExpiryPolicy;
  private readonly maxIps: number;
  private syncRequested = false;
  /** The bridge the network moved to, until its block is in the kernel, and the one it left. */
  private moveRequested: string | undefined;
  private movingFrom: string | undefined;
  private lastBatchOpened = false;
  private draining: Promise<void> | undefined;
  private running = false;
  private expiryTimer: { handle: NodeJS.Timeout; at: number } | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly clock: () => number;
  private readonly isAddress: (address: string) => boolean;
  private readonly log: Logger;
  /** A burst can drop or evict thousands of addresses a second: one line per second says so. */
  private readonly droppedWarning: LogSummary;
  private readonly evictedWarning: LogSummary;

  constructor(private readonly options: FirewallOptions) {
    this.backend = 'backend' in options ? options.backend : new IptablesBackend(options.runner, options.layout);
    this.now = options.now ?? (() => performance.now());
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.isAddress = options.isAddress ?? (this.backend.layout.family === 6 ? isIPv6 : isIPv4);
    this.policy = { minTtl: options.minTtl ?? EXPIRY_DEFAULTS.minTtl, ttlGrace: options.ttlGrace ?? EXPIRY_DEFAULTS.ttlGrace };
    this.maxIps = options.maxIps ?? DEFAULT_MAX_IPS;
    this.log = options.log;
    this.droppedWarning = new LogSummary(this.log, 'firewall queue full: address not opened');
    this.evictedWarning = new LogSummary(this.log, 'address limit reached: closing the address closest to expiry (raise --max-ips)');
  }

  /** The bridge our block filters, as the logs name it. */
  private get context(): { bridge: string; ports: readonly number[] } {
    return { bridge: this.backend.layout.bridge, ports: this.backend.layout.ports };
  }

  /** Install or adopt our block and the addresses a previous run opened; start the timers. */
  async start(): Promise<{ adopted: number; rebuilt: boolean }> {
    const { adopted, rebuilt } = await this.backend.sync();
    this.absorb(adopted);
    this.running = true;
    this.scheduleExpiry();
    if (this.dirty.size > 0) this.scheduleDrain();
    const interval = this.options.reconcileIntervalMs ?? 0;
    if (interval > 0) this.reconcileTimer = setInterval(() => void this.reconcile(), interval).unref();
    this.log.info(
      { ...this.context, adopted: adopted.length, rebuilt, withoutExpiry: adopted.filter((e) => e.expiresAt === undefined).length },
      rebuilt ? 'installed base rules in DOCKER-USER' : 'adopted existing rules in DOCKER-USER',
    );
    return { adopted: adopted.length, rebuilt };
  }

  /** Stop the timers; the rules stay in the kernel. */
  stop(): void {
    this.running = false;
    if (this.expiryTimer) clearTimeout(this.expiryTimer.handle);
    this.expiryTimer = undefined;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.reconcileTimer = undefined;
    this.droppedWarning.flush();
    this.evictedWarning.flush();
  }

  isAllowed(address: string): boolean {
    return this.kernel.has(address);
  }

  get allowedCount(): number {
    return this.kernel.size;
  }

  /** What the kernel holds, as last confirmed: address, name, expiry. */
  entries(): Entry[] {
    return [...this.kernel.values()];
  }

  /** Addresses wanted open: in the kernel, or waiting for it. */
  get trackedCount(): number {
    return this.wanted.size;
  }

  /** The client that last asked for `address`, if an answer in this run carried one. */
  clientOf(address: string): string | undefined {
    return this.clients.get(address);
  }

  /** The kernel's packet and byte counters per open address, if the backend can read them. */
  async counters(): Promise<Map<string, Counters> | undefined> {
    return this.backend.counters?.();
  }

  /**
   * Open `address` for `ttl` seconds (plus floor and grace), or push its expiry later.
   * 'queued': new; 'refreshed': already open, its expiry will be rewritten; 'known':
   * nothing to do (open or queued, and its expiry is recent enough).
   */
  allow(address: string, name?: string, ttl = 0, client?: string): AllowResult {
    if (!this.isAddress(address)) return 'invalid';
    if (client !== undefined && this.wanted.has(address)) this.clients.set(address, client);
    const expiresAt = expiryFor(this.clock(), ttl, this.policy);
    const current = this.wanted.get(address);
    if (current && !needsRefresh(current.expiresAt, expiresAt, this.policy)) return 'known';
    if (!current && this.dirty.size >= (this.options.maxPending ?? DEFAULT_MAX_PENDING)) {
      this.stats.droppedFromQueue++;
      this.droppedWarning.warn({ address, name, dropped: this.stats.droppedFromQueue, pending: this.dirty.size });
      return 'dropped';
    }
    if (!current) this.makeRoom(1);
    if (client !== undefined) this.clients.set(address, client);
    const named = name ?? current?.name;
    this.want({ address, ...(named ? { name: named } : {}), expiresAt });
    this.dirty.add(address);
    if (this.dirty.size > this.stats.peakPending) this.stats.peakPending = this.dirty.size;
    this.scheduleDrain();
    if (this.kernel.has(address)) return 'refreshed';
    if (!this.queuedAt.has(address)) this.queuedAt.set(address, this.now());
    return current ? 'known' : 'queued';
  }

  /**
   * Resolves true once the kernel holds `address` (at once if it does already), false if
   * it will not: not wanted (never allowed, dropped, evicted or expired). Callers bound the
   * wait; a kernel that keeps refusing leaves the promise pending until it recovers.
   */
  whenInKernel(address: string): Promise<boolean> {
    if (this.kernel.has(address)) return Promise.resolve(true);
    if (!this.wanted.has(address)) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiting = this.waiters.get(address);
      if (waiting) waiting.push(resolve);
      else this.waiters.set(address, [resolve]);
    });
  }

  /** Close every address whose time has come, in one batch; returns how many. */
  expire(): number {
    const now = this.clock();
    const expired: Entry[] = [];
    for (let top = this.peekValid(); top && top.expiresAt <= now; top = this.peekValid()) {
      this.heap.pop();
      expired.push(this.wanted.get(top.address)!);
      this.unwant(top.address);
    }
    if (expired.length > 0) {
      this.stats.expired += expired.length;
      this.log.info(
        { expired: expired.length, addresses: expired.slice(0, LOGGED_ADDRESSES).map((e) => `${e.address} ${e.name ?? ''}`.trim()) },
        'addresses expired: closing them (established connections keep working)',
      );
      this.scheduleDrain();
    }
    this.scheduleExpiry();
    return expired.length;
  }

  /** Read the kernel, restore our rules and every live address missing from it; resolves when done. */
  async reconcile(): Promise<void> {
    this.syncRequested = true;
    this.scheduleDrain();
    await this.settled();
  }

  /**
   * The network was re-created on another bridge: install our block there with every open
   * address, then remove the old bridge's rules (the backend's moveTo). Queued with the
   * batches, retried like them; resolves once the kernel has the new block.
   */
  async moveTo(bridge: string): Promise<void> {
    this.movingFrom ??= this.backend.layout.bridge;
    this.moveRequested = bridge;
    this.scheduleDrain();
    await this.settled();
  }

  /** Resolves once the kernel holds what is wanted. */
  async settled(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private want(entry: Entry & { expiresAt: number }): void {
    this.wanted.set(entry.address, entry);
    this.heap.push(entry.expiresAt, entry.address);
    if (this.heap.size > 2 * this.wanted.size + 1024) {
      this.heap.clear();
      for (const e of this.wanted.values()) this.heap.push(e.expiresAt, e.address);
    }
    this.scheduleExpiry();
  }

  private unwant(address: string): void {
    this.wanted.delete(address);
    this.clients.delete(address);
    this.dirty.add(address);
    this.wake(address, false);
  }

  private wake(address: string, inKernel: boolean): void {
    const waiting = this.waiters.get(address);
    if (!waiting) return;
    this.waiters.delete(address);
    for (const resolve of waiting) resolve(inKernel);
  }

  /** The heap's soonest item that still describes a wanted address, dropping stale ones. */
  private peekValid() {
    for (let top = this.heap.peek(); top; top = this.heap.peek()) {
      if (this.wanted.get(top.address)?.expiresAt === top.expiresAt) return top;
      this.heap.pop();
    }
    return undefined;
  }

  /** Keep `room` places free under maxIps, closing the addresses closest to expiry. */
  private makeRoom(room: number): void {
    while (this.wanted.size + room > this.maxIps) {
      const top = this.peekValid();
      if (!top) return;
      this.heap.pop();
      const victim = this.wanted.get(top.address)!;
      this.unwant(top.address);
      this.stats.evicted++;
      this.evictedWarning.warn({ address: victim.address, name: victim.name, expiresAt: victim.expiresAt, maxIps: this.maxIps, evicted: this.stats.evicted });
      this.scheduleDrain();
    }
  }

  private scheduleExpiry(): void {
    if (!this.running) return;
    const top = this.peekValid();
    if (this.expiryTimer && top && this.expiryTimer.at <= top.expiresAt) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer.handle);
    this.expiryTimer = undefined;
    if (!top) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(MIN_SWEEP_MS, (top.expiresAt - this.clock()) * 1000));
    const handle = setTimeout(() => {
      this.expiryTimer = undefined;
      this.expire();
    }, delay).unref();
    this.expiryTimer = { handle, at: top.expiresAt };
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    // setImmediate lets every frame of the current socket chunk join the same batch.
    this.draining = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.drain())
      .finally(() => {
        this.draining = undefined;
      });
  }

  private async drain(): Promise<void> {
    let delay = this.options.retryDelayMs?.first ?? 100;
    while (this.moveRequested !== undefined || this.syncRequested || this.dirty.size > 0) {
      try {
        if (this.moveRequested !== undefined) {
          await this.relayout(this.moveRequested);
          continue;
        }
        if (this.syncRequested) {
          this.syncRequested = false;
          await this.resync();
          continue;
        }
        const batch = this.takeBatch();
        if (batch.add.length + batch.remove.length === 0) continue;
        await this.backend.apply(batch.add, batch.remove);
        this.commit(batch.add, batch.remove);
        delay = this.options.retryDelayMs?.first ?? 100;
        this.stats.failingApplies = 0;
      } catch (err) {
        this.stats.applyFailures++;
        this.stats.failingApplies++;
        this.log.warn({ err: (err as Error).message, pending: this.dirty.size, retryInMs: delay }, 'firewall apply failed; reading the kernel again and retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, this.options.retryDelayMs?.max ?? 5_000);
        this.syncRequested = true;
      }
    }
    this.lastBatchOpened = false; // the next drain starts with new addresses
    this.stats.failingApplies = 0; // the kernel holds what is wanted (a resync may have found it so)
  }

  /**
   * The next batch: new addresses (up to MAX_BATCH), or rewrites, refreshes and removals
   * (up to MAX_REWRITES), taking turns when both wait. Dirty addresses that already match
   * the kernel are dropped from `dirty` on the way.
   */
  private takeBatch(): { add: Entry[]; remove: Entry[] } {
    const opens: Entry[] = [];
    const refreshes: Entry[] = [];
    const removes: Entry[] = [];
    for (const address of this.dirty) {
      if (opens.length >= MAX_BATCH && refreshes.length + removes.length >= MAX_REWRITES) break;
      const wanted = this.wanted.get(address);
      const installed = this.kernel.get(address);
      if (wanted && !installed) {
        if (opens.length < MAX_BATCH) opens.push(wanted);
      } else if (wanted && wanted.expiresAt !== installed!.expiresAt) {
        if (refreshes.length + removes.length < MAX_REWRITES) refreshes.push(wanted);
      } else if (!wanted && installed) {
        if (refreshes.length + removes.length < MAX_REWRITES) removes.push(installed);
      } else {
        this.dirty.delete(address);
        this.queuedAt.delete(address);
      }
    }
    const rewrites = refreshes.length + removes.length > 0;
    this.lastBatchOpened = opens.length > 0 && !(rewrites && this.lastBatchOpened);
    return this.lastBatchOpened ? { add: opens, remove: [] } : { add: refreshes, remove: removes };
  }

  private commit(add: readonly Entry[], remove: readonly Entry[]): void {
    const start = this.now();
    let oldest = Infinity;
    let opened = 0;
    for (const entry of remove) {
      this.kernel.delete(entry.address);
      if (!this.wanted.has(entry.address)) this.dirty.delete(entry.address);
    }
    for (const entry of add) {
      if (this.kernel.has(entry.address)) this.stats.refreshes++;
      else opened++;
      this.kernel.set(entry.address, entry);
      this.wake(entry.address, true);
      if (this.wanted.get(entry.address) === entry) this.dirty.delete(entry.address);
      const since = this.queuedAt.get(entry.address);
      if (since !== undefined) oldest = Math.min(oldest, since);
      if (since !== undefined) this.options.onInKernel?.(start - since, 1);
      this.queuedAt.delete(entry.address);
    }
    this.stats.applies++;
    this.stats.addressesAllowed += opened;
    const latency = oldest === Infinity ? undefined : start - oldest;
    if (latency !== undefined) {
      this.stats.lastLatencyMs = latency;
      this.stats.maxLatencyMs = Math.max(this.stats.maxLatencyMs, latency);
    }
    this.log.debug(
      { opened, refreshed: add.length - opened, closed: remove.length, ...(latency !== undefined ? { latencyMs: Math.round(latency * 100) / 100 } : {}) },
      'rules in the kernel',
    );
  }

  /** Carry every open address to the new bridge; a sync that was due is done by the move. */
  private async relayout(bridge: string): Promise<void> {
    const { adopted } = await this.backend.moveTo(bridge, [...this.kernel.values()]);
    const from = this.movingFrom;
    if (this.moveRequested === bridge) [this.moveRequested, this.movingFrom] = [undefined, undefined];
    this.syncRequested = false;
    this.absorb(adopted);
    this.log.info(
      { from, to: bridge, open: this.kernel.size, pending: this.dirty.size },
      'moved our rules to the new bridge: its block and open addresses first, then the old bridge\'s rules removed',
    );
  }

  /** Read the kernel again (after a failure, or to reconcile) and say what someone else took away. */
  private async resync(): Promise<void> {
    const { adopted, rebuilt } = await this.backend.sync();
    const missing = this.absorb(adopted);
    if (!rebuilt && missing.length === 0) return;
    this.stats.restored++;
    this.log.warn(
      { ...this.context, rebuilt, missing: missing.length, addresses: missing.slice(0, LOGGED_ADDRESSES), restoring: missing.filter((a) => this.wanted.has(a)).length },
      rebuilt
        ? 'our base rules were missing or damaged (chain flushed or re-created?): reinstalled them and restoring the live addresses'
        : 'rules for open addresses were missing from the kernel: restoring them',
    );
  }

  /**
   * Take the kernel's word for what it holds. Entries we did not know are adopted (with
   * their expiry; a fresh lifetime if the rule predates expiry; closed if already
   * expired); entries we knew and it lacks are returned, and re-added if still wanted.
   */
  private absorb(adopted: readonly Entry[]): string[] {
    const now = this.clock();
    const found = new Map(adopted.map((entry) => [entry.address, entry]));
    const missing = [...this.kernel.keys()].filter((address) => !found.has(address));
    this.kernel = found;
    for (const address of [...this.waiters.keys()]) if (found.has(address)) this.wake(address, true);
    for (const address of missing) this.dirty.add(address);
    for (const entry of adopted) {
      if (!this.wanted.has(entry.address) && !this.dirty.has(entry.address)) this.adopt(entry, now);
      if (this.wanted.get(entry.address)?.expiresAt !== entry.expiresAt) this.dirty.add(entry.address);
    }
    this.makeRoom(0);
    return missing;
  }

  private adopt(entry: Entry, now: number): void {
    if (entry.expiresAt === undefined) this.want({ ...entry, expiresAt: expiryFor(now, 0, this.policy) });
    else if (entry.expiresAt > now) this.want({ ...entry, expiresAt: entry.expiresAt });
  }
}
