/**
 * The firewall: which addresses are open, for whom and until when; the backend does the
 * kernel work.
 *
 *   allow() ─▶ ledger (wanted, kernel, dirty; limits) ─takeBatch─▶ apply loop ─▶ backend.apply()
 *                 ▲ expiry timer, reconcile timer            │ failure: read the kernel, retry with backoff
 *                 └──────────────── commit ◀─────────────────┘─▶ waiters (inline DNS), onInKernel (metrics)
 *
 * A burst of answers, or of expiries, costs one kernel transaction, not one per address. An
 * address counts as allowed only once the kernel has it. A periodic reconcile reads the
 * kernel the same way and restores what someone else removed.
 *
 * Expiry deadlines are wall-clock seconds and live in the kernel (the backend keeps them
 * with each rule or element), so a restart adopts them.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError } from '../util/errors.js';
import { LogSummary } from '../util/log-summary.js';
import { ApplyLoop } from './apply-loop.js';
import type { Counters, Entry, FirewallBackend, SyncResult } from './backend.js';
import { EXPIRY_DEFAULTS, type ExpiryPolicy } from './expiry.js';
import { IptablesBackend } from './iptables-backend.js';
import type { IptablesRunner } from './iptables.js';
import { Ledger, type AllowResult, type Batch, type Closed, type Wanted } from './ledger.js';
import type { Layout } from './planner.js';
import { Waiters } from './waiters.js';

export type { AllowResult } from './ledger.js';

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
  /** Most addresses open (or opening) at once; beyond it one is closed (limits.ts says which). */
  maxIps?: number;
  /** Most addresses one name holds open; beyond it the name's oldest is closed. */
  maxIpsPerName?: number;
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
  /** Closed early to stay within maxIpsPerName. */
  evictedForName: number;
  /** Reconciles (or retries) that found our rules damaged or missing and restored them. */
  restored: number;
  /** Failed applies since the last one that succeeded; for the health check. */
  failingApplies: number;
  /** The most addresses ever waiting for the kernel at once (the queue's high-water mark). */
  peakPending: number;
}

/**
 * Rewrites (refreshes and removals) delete rules, and iptables-nft finds each rule to
 * delete by comparing it with the rules above it (bench/RESULTS.md: 0.25 ms a rule near
 * the top of a 10,000-rule chain, 14 ms near the bottom), so they go in smaller batches,
 * taking turns with batches of new addresses so that an expiry wave never holds up an
 * answer for long. After a failed batch the limit halves, so that a batch too slow for the
 * kernel's time bound shrinks until it passes instead of being retried unchanged for ever.
 */
const MAX_REWRITES = 1024;
const DEFAULT_MAX_PENDING = 100_000;
export const DEFAULT_MAX_IPS = 5_000;
/** Cilium keeps about as many per name; a name with more is rotating through a pool. */
export const DEFAULT_MAX_IPS_PER_NAME = 1_000;
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
    evictedForName: 0,
    restored: 0,
    failingApplies: 0,
    peakPending: 0,
  };
  private readonly backend: FirewallBackend;
  private readonly ledger: Ledger;
  private readonly loop: ApplyLoop;
  private readonly waiters = new Waiters();
  /** When each address not yet in the kernel was first asked for (monotonic ms). */
  private readonly queuedAt = new Map<string, number>();
  private rewriteLimit = MAX_REWRITES;
  private currentBypasses: string[] = [];
  private syncRequested = false;
  /** The bridge the network moved to, until its block is in the kernel, and the one it left. */
  private moveRequested: Layout | undefined;
  private movingFrom: string | undefined;
  private running = false;
  private expiryTimer: { handle: NodeJS.Timeout; at: number } | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly clock: () => number;
  private readonly isAddress: (address: string) => boolean;
  private readonly expiryPolicy: ExpiryPolicy;
  private readonly log: Logger;
  /** A burst can drop or evict thousands of addresses a second: one line per second says so. */
  private readonly droppedWarning: LogSummary;
  private readonly evictedWarning: LogSummary;
  private readonly nameLimitWarning: LogSummary;

  constructor(private readonly options: FirewallOptions) {
    this.backend = 'backend' in options ? options.backend : new IptablesBackend(options.runner, options.layout);
    this.now = options.now ?? (() => performance.now());
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.isAddress = options.isAddress ?? (this.backend.layout.family === 6 ? isIPv6 : isIPv4);
    this.expiryPolicy = { minTtl: options.minTtl ?? EXPIRY_DEFAULTS.minTtl, ttlGrace: options.ttlGrace ?? EXPIRY_DEFAULTS.ttlGrace };
    this.ledger = new Ledger({
      expiry: this.expiryPolicy,
      maxIps: options.maxIps ?? DEFAULT_MAX_IPS,
      maxIpsPerName: options.maxIpsPerName ?? DEFAULT_MAX_IPS_PER_NAME,
      maxPending: options.maxPending ?? DEFAULT_MAX_PENDING,
    });
    this.log = options.log;
    this.droppedWarning = new LogSummary(this.log, 'firewall queue full: address not opened');
    this.evictedWarning = new LogSummary(
      this.log,
      'address limit reached: closing the address closest to expiry of the pattern holding the most (raise --max-ips)',
    );
    this.nameLimitWarning = new LogSummary(this.log, 'one name holds too many addresses: closing its oldest (raise --max-ips-per-name)');
    const retry = options.retryDelayMs ?? { first: 100, max: 5_000 };
    this.loop = new ApplyLoop({
      step: () => this.step(),
      onFailure: (err, attempt, retryInMs) => this.failed(err, attempt, retryInMs),
      onIdle: () => {
        this.stats.failingApplies = 0; // the kernel holds what is wanted (a resync may have found it so)
      },
      backoff: { initialMs: retry.first * 2, maxMs: retry.max },
    });
  }

  /** What the backend filters: bridge, ports, subnets. */
  get layout(): Layout {
    return this.backend.layout;
  }

  /** The bridge our block filters, as the logs name it. */
  private get context(): { bridge: string; ports: string[] } {
    return { bridge: this.backend.layout.bridge, ports: this.backend.layout.ports.map((p) => `${p.protocol}/${p.port}`) };
  }

  /**
   * Install or adopt our block and the addresses a previous run opened; start the timers.
   * Refuses (ConfigError) when the bridge's traffic would get past our rules: a firewall
   * that does not hold must not look as if it did.
   */
  async start(): Promise<{ adopted: number; rebuilt: boolean }> {
    const { adopted, rebuilt, bypasses = [] } = await this.backend.sync();
    if (bypasses.length > 0) throw new ConfigError(bypasses.join('; '));
    this.absorb(adopted);
    this.running = true;
    this.scheduleExpiry();
    if (this.ledger.pendingCount > 0) this.loop.kick();
    const interval = this.options.reconcileIntervalMs ?? 0;
    if (interval > 0) this.reconcileTimer = setInterval(() => void this.reconcile(), interval).unref();
    this.log.info(
      { ...this.context, adopted: adopted.length, rebuilt, withoutExpiry: adopted.filter((e) => e.expiresAt === undefined).length },
      `${rebuilt ? 'installed base rules' : 'adopted existing rules'} ${this.backend.where}`,
    );
    return { adopted: adopted.length, rebuilt };
  }

  /**
   * Stop the timers and the apply loop; the rules stay in the kernel. A change under way
   * finishes (settled() says when); nothing new starts, not even a retry.
   */
  stop(): void {
    this.running = false;
    this.loop.stop();
    if (this.expiryTimer) clearTimeout(this.expiryTimer.handle);
    this.expiryTimer = undefined;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.reconcileTimer = undefined;
    for (const address of [...this.waiters.addresses()]) this.waiters.wake(address, false);
    this.droppedWarning.flush();
    this.evictedWarning.flush();
    this.nameLimitWarning.flush();
  }

  isAllowed(address: string): boolean {
    return this.ledger.inKernel(address) !== undefined;
  }

  get allowedCount(): number {
    return this.ledger.kernelCount;
  }

  /** What the kernel holds, as last confirmed: address, name, expiry. */
  entries(): Entry[] {
    return this.ledger.kernelEntries();
  }

  /** Addresses wanted open: in the kernel, or waiting for it. */
  get trackedCount(): number {
    return this.ledger.wantedCount;
  }

  /** The client that last asked for `address`, if an answer in this run carried one. */
  clientOf(address: string): string | undefined {
    return this.ledger.wantedEntry(address)?.client;
  }

  /** The pattern that opened `address`, in this run. */
  patternOf(address: string): string | undefined {
    return this.ledger.wantedEntry(address)?.group || undefined;
  }

  /** Ways the bridge's traffic gets past our rules, as the last read of the kernel found them; empty when it holds. */
  get bypasses(): readonly string[] {
    return this.currentBypasses;
  }

  /** Inline answers waiting for their addresses (for tests and health). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** The kernel's packet and byte counters per open address, if the backend can read them. */
  async counters(): Promise<Map<string, Counters> | undefined> {
    return this.backend.counters?.();
  }

  /**
   * Open `address` for `ttl` seconds (plus floor and grace), or push its expiry later.
   * 'queued': new; 'refreshed': already open, its expiry will be rewritten; 'known':
   * nothing to do (open or queued, and its expiry is recent enough); 'dropped': the queue
   * is full, or the firewall is stopped.
   */
  allow(address: string, name?: string, ttl = 0, client?: string, pattern?: string): AllowResult {
    if (!this.isAddress(address)) return 'invalid';
    if (this.loop.isStopped) return 'dropped';
    const { result, closed } = this.ledger.open(
      { address, ttl, ...(name !== undefined ? { name } : {}), ...(client !== undefined ? { client } : {}), ...(pattern !== undefined ? { group: pattern } : {}) },
      this.clock(),
    );
    this.closed(closed);
    if (result === 'dropped') {
      this.stats.droppedFromQueue++;
      this.droppedWarning.warn({ address, name, dropped: this.stats.droppedFromQueue, pending: this.ledger.pendingCount });
      return result;
    }
    if (result === 'known') return result;
    if (this.ledger.pendingCount > this.stats.peakPending) this.stats.peakPending = this.ledger.pendingCount;
    if (result === 'queued') this.queuedAt.set(address, this.now());
    this.scheduleExpiry();
    this.loop.kick();
    return result;
  }

  /**
   * Resolves true once the kernel holds `address` (at once if it does already), false if
   * it will not: not wanted (never allowed, dropped, evicted or expired), the firewall
   * stopped, or `signal` aborted first (the caller gave up waiting).
   */
  whenInKernel(address: string, signal?: AbortSignal): Promise<boolean> {
    if (this.isAllowed(address)) return Promise.resolve(true);
    if (!this.ledger.isWanted(address) || !this.running) return Promise.resolve(false);
    return this.waiters.wait(address, signal);
  }

  /** Close every address whose time has come, in one batch; returns how many. */
  expire(): number {
    const expired = this.ledger.expire(this.clock());
    for (const entry of expired) this.forget(entry.address);
    if (expired.length > 0) {
      this.stats.expired += expired.length;
      this.log.info(
        { expired: expired.length, addresses: expired.slice(0, LOGGED_ADDRESSES).map((e) => `${e.address} ${e.name ?? ''}`.trim()) },
        'addresses expired: closing them (established connections keep working)',
      );
      this.loop.kick();
    }
    this.scheduleExpiry();
    return expired.length;
  }

  /**
   * Close every open address whose name `allowed` no longer allows (a reload changed the
   * policy's patterns); an address opened before a restart, whose name we do not know,
   * stays until it expires. Returns how many.
   */
  retain(allowed: (name: string) => boolean): number {
    const closed = this.ledger.closeWhere((entry) => entry.name === undefined || allowed(entry.name));
    for (const entry of closed) this.forget(entry.address);
    if (closed.length > 0) {
      this.log.info(
        { closed: closed.length, addresses: closed.slice(0, LOGGED_ADDRESSES).map((e) => `${e.address} ${e.name ?? ''}`.trim()) },
        'the policy no longer allows these names: closing their addresses',
      );
      this.loop.kick();
    }
    return closed.length;
  }

  /** Every address wanted open, with who asked and what opened it: for the admin API. */
  wantedEntries(): Wanted[] {
    return this.ledger.wantedEntries();
  }

  /** Read the kernel, restore our rules and every live address missing from it; resolves when done. */
  async reconcile(): Promise<void> {
    this.syncRequested = true;
    this.loop.kick();
    await this.settled();
  }

  /**
   * The network was re-created on another bridge: install our block there with every open
   * address, then remove the old bridge's rules (the backend's moveTo). Queued with the
   * batches, retried like them; resolves once the kernel has the new block.
   */
  async moveTo(bridge: string, layout: Layout = { ...this.backend.layout, bridge }): Promise<void> {
    this.movingFrom ??= this.backend.layout.bridge;
    this.moveRequested = { ...layout, bridge };
    this.loop.kick();
    await this.settled();
  }

  /** Resolves once the kernel holds what is wanted (or, after stop(), once the change under way has ended). */
  async settled(): Promise<void> {
    await this.loop.settled();
  }

  /** One step of the apply loop; false when the kernel holds what is wanted. */
  private async step(): Promise<boolean> {
    if (this.moveRequested !== undefined) {
      await this.relayout(this.moveRequested);
      return true;
    }
    if (this.syncRequested) {
      this.syncRequested = false;
      await this.resync();
      return true;
    }
    const batch = this.ledger.takeBatch(this.rewriteLimit);
    if (!batch) return false;
    await this.backend.apply(batch.add, batch.remove);
    this.commit(batch);
    this.stats.failingApplies = 0;
    this.rewriteLimit = Math.min(MAX_REWRITES, this.rewriteLimit * 2);
    return true;
  }

  private failed(err: unknown, attempt: number, retryInMs: number): void {
    this.stats.applyFailures++;
    this.stats.failingApplies++;
    this.rewriteLimit = Math.max(1, Math.floor(this.rewriteLimit / 2));
    this.log.warn(
      { err: (err as Error).message, pending: this.ledger.pendingCount, attempt, retryInMs, nextRewriteBatch: this.rewriteLimit },
      'firewall apply failed; reading the kernel again and retrying',
    );
    this.syncRequested = true;
  }

  private commit(batch: Batch): void {
    const start = this.now();
    let oldest = Infinity;
    const opened = new Set(this.ledger.commit(batch));
    for (const entry of batch.add) {
      if (!opened.has(entry.address)) this.stats.refreshes++;
      this.waiters.wake(entry.address, true);
      const since = this.queuedAt.get(entry.address);
      if (since !== undefined) {
        oldest = Math.min(oldest, since);
        this.options.onInKernel?.(start - since, 1);
        this.queuedAt.delete(entry.address);
      }
    }
    this.stats.applies++;
    this.stats.addressesAllowed += opened.size;
    const latency = oldest === Infinity ? undefined : start - oldest;
    if (latency !== undefined) {
      this.stats.lastLatencyMs = latency;
      this.stats.maxLatencyMs = Math.max(this.stats.maxLatencyMs, latency);
    }
    this.log.debug(
      {
        opened: opened.size,
        refreshed: batch.add.length - opened.size,
        closed: batch.remove.length,
        inKernel: this.ledger.kernelCount,
        ...(latency !== undefined ? { latencyMs: Math.round(latency * 100) / 100 } : {}),
      },
      'rules in the kernel',
    );
  }

  /** Addresses no longer wanted: wake their waiters, log and count the early closes. */
  private closed(closed: readonly Closed[]): void {
    for (const { entry, why } of closed) {
      this.forget(entry.address);
      if (why === 'evicted') {
        this.stats.evicted++;
        this.evictedWarning.warn({ address: entry.address, name: entry.name, pattern: entry.group || undefined, expiresAt: entry.expiresAt, maxIps: this.options.maxIps ?? DEFAULT_MAX_IPS, evicted: this.stats.evicted });
      } else if (why === 'name-limit') {
        this.stats.evictedForName++;
        this.nameLimitWarning.warn({ address: entry.address, name: entry.name, evicted: this.stats.evictedForName });
      }
    }
  }

  private forget(address: string): void {
    this.queuedAt.delete(address);
    this.waiters.wake(address, false);
  }

  private scheduleExpiry(): void {
    if (!this.running) return;
    const next = this.ledger.nextExpiry();
    if (this.expiryTimer && next !== undefined && this.expiryTimer.at <= next) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer.handle);
    this.expiryTimer = undefined;
    if (next === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(MIN_SWEEP_MS, (next - this.clock()) * 1000));
    const handle = setTimeout(() => {
      this.expiryTimer = undefined;
      this.expire();
    }, delay).unref();
    this.expiryTimer = { handle, at: next };
  }

  /** Carry every open address to the new bridge; a sync that was due is done by the move. */
  private async relayout(layout: Layout): Promise<void> {
    const result = await this.backend.moveTo(layout, this.ledger.kernelEntries());
    const { adopted } = result;
    this.noteBypasses(result);
    const from = this.movingFrom;
    const bridge = layout.bridge;
    if (this.moveRequested === layout) [this.moveRequested, this.movingFrom] = [undefined, undefined];
    this.syncRequested = false;
    this.absorb(adopted);
    this.log.info(
      { from, to: bridge, open: this.ledger.kernelCount, pending: this.ledger.pendingCount },
      "moved our rules to the new bridge: its block and open addresses first, then the old bridge's rules removed",
    );
  }

  /** Read the kernel again (after a failure, or to reconcile) and say what someone else took away. */
  private async resync(): Promise<void> {
    const result = await this.backend.sync();
    const { adopted, rebuilt } = result;
    this.noteBypasses(result);
    const missing = this.absorb(adopted);
    if (!rebuilt && missing.length === 0) return;
    this.stats.restored++;
    this.log.warn(
      {
        ...this.context,
        rebuilt,
        missing: missing.length,
        addresses: missing.slice(0, LOGGED_ADDRESSES),
        restoring: missing.filter((a) => this.ledger.isWanted(a)).length,
      },
      rebuilt
        ? 'our base rules were missing or damaged (chain flushed or re-created?): reinstalled them and restoring the live addresses'
        : 'rules for open addresses were missing from the kernel: restoring them',
    );
  }

  /** A bypass found at run time is said once when it appears, and once when it is gone; /healthz reports it meanwhile. */
  private noteBypasses({ bypasses = [] }: SyncResult): void {
    const before = this.currentBypasses.join('\n');
    this.currentBypasses = bypasses;
    if (bypasses.join('\n') === before) return;
    if (bypasses.length > 0) this.log.error({ ...this.context, bypasses }, `egress from ${this.context.bridge} is NOT filtered: ${bypasses[0]}`);
    else this.log.info(this.context, 'our rules are met again: nothing lets the bridge\'s traffic past them');
  }

  /** Take the kernel's word for what it holds (ledger.absorb); wake who waited for what it has. */
  private absorb(adopted: readonly Entry[]): string[] {
    const { missing, closed } = this.ledger.absorb(adopted, this.clock());
    this.closed(closed);
    for (const address of [...this.waiters.addresses()]) if (this.isAllowed(address)) this.waiters.wake(address, true);
    this.scheduleExpiry();
    return missing;
  }
}

export type { Wanted };
