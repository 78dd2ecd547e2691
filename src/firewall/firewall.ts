/**
 * The firewall: keeps our block in DOCKER-USER and opens allowed addresses in batches.
 *
 * allow() only queues; one apply at a time drains the queue with a single
 * iptables-restore, so a burst of answers costs one exec, not one per address. An address
 * counts as allowed only once the kernel has taken its rules; a failed apply is logged,
 * the chain is read again, and the batch retried with backoff. Nothing is ever lost from
 * the queue except by the bound, which is counted.
 */
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { IptablesRunner } from './iptables.js';
import { planAllow, planSync, type AllowEntry, type Layout } from './planner.js';

export interface FirewallOptions {
  runner: IptablesRunner;
  layout: Layout;
  log: Logger;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
  /** Most addresses waiting for the kernel at once; more are dropped and counted. */
  maxPending?: number;
  retryDelayMs?: { first: number; max: number };
}

export type AllowResult = 'known' | 'queued' | 'dropped' | 'invalid';

export interface FirewallStats {
  applies: number;
  applyFailures: number;
  addressesAllowed: number;
  droppedFromQueue: number;
  /** From an address being queued to its rules being in the kernel, for the last batch. */
  lastLatencyMs: number;
  maxLatencyMs: number;
}

/** Big enough for any real burst, small enough that one restore stays well under a second. */
const MAX_BATCH = 2048;
const DEFAULT_MAX_PENDING = 100_000;

export class Firewall {
  readonly stats: FirewallStats = {
    applies: 0,
    applyFailures: 0,
    addressesAllowed: 0,
    droppedFromQueue: 0,
    lastLatencyMs: 0,
    maxLatencyMs: 0,
  };
  private readonly allowed = new Map<string, string | undefined>();
  private readonly pending = new Map<string, { name?: string; since: number }>();
  private insertAt = 3;
  private draining: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly options: FirewallOptions) {
    this.now = options.now ?? (() => performance.now());
    this.log = options.log;
  }

  /** Install or adopt our block; returns the addresses a previous run had opened. */
  async start(): Promise<{ adopted: number; rebuilt: boolean }> {
    const plan = await this.sync();
    this.log.info(
      { bridge: this.options.layout.bridge, ports: this.options.layout.ports, adopted: plan.adopted.length, rebuilt: plan.rebuilt },
      plan.rebuilt ? 'installed base rules in DOCKER-USER' : 'adopted existing rules in DOCKER-USER',
    );
    return { adopted: plan.adopted.length, rebuilt: plan.rebuilt };
  }

  isAllowed(address: string): boolean {
    return this.allowed.has(address);
  }

  get allowedCount(): number {
    return this.allowed.size;
  }

  allow(address: string, name?: string): AllowResult {
    if (this.allowed.has(address) || this.pending.has(address)) return 'known';
    if (isIP(address) !== (this.options.layout.family ?? 4)) return 'invalid';
    if (this.pending.size >= (this.options.maxPending ?? DEFAULT_MAX_PENDING)) {
      this.stats.droppedFromQueue++;
      this.log.warn({ address, name, dropped: this.stats.droppedFromQueue }, 'firewall queue full: address not opened');
      return 'dropped';
    }
    this.pending.set(address, { ...(name ? { name } : {}), since: this.now() });
    this.scheduleDrain();
    return 'queued';
  }

  /** Resolves once every queued address is in the kernel. */
  async settled(): Promise<void> {
    while (this.draining) await this.draining;
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
    while (this.pending.size > 0) {
      const batch = this.takeBatch();
      try {
        await this.options.runner.restore(planAllow(batch.entries, this.options.layout, this.insertAt));
        this.markAllowed(batch.entries, batch.oldest);
        delay = this.options.retryDelayMs?.first ?? 100;
      } catch (err) {
        this.stats.applyFailures++;
        this.log.warn(
          { err: (err as Error).message, addresses: batch.entries.length, retryInMs: delay },
          'firewall apply failed; reading DOCKER-USER again and retrying',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, this.options.retryDelayMs?.max ?? 5_000);
        await this.sync().catch((syncErr: Error) => this.log.warn({ err: syncErr.message }, 'firewall resync failed'));
      }
    }
  }

  private takeBatch(): { entries: AllowEntry[]; oldest: number } {
    const entries: AllowEntry[] = [];
    let oldest = Infinity;
    for (const [address, { name, since }] of this.pending) {
      if (entries.length >= MAX_BATCH) break;
      entries.push(name ? { address, name } : { address });
      oldest = Math.min(oldest, since);
    }
    return { entries, oldest };
  }

  private markAllowed(entries: readonly AllowEntry[], oldest: number): void {
    for (const entry of entries) {
      this.pending.delete(entry.address);
      this.allowed.set(entry.address, entry.name);
    }
    const latency = this.now() - oldest;
    this.stats.applies++;
    this.stats.addressesAllowed += entries.length;
    this.stats.lastLatencyMs = latency;
    this.stats.maxLatencyMs = Math.max(this.stats.maxLatencyMs, latency);
    this.log.debug({ addresses: entries.length, latencyMs: Math.round(latency * 100) / 100 }, 'rules in the kernel');
  }

  /** Read the chain, put our block in order, and take what it already allows as ours. */
  private async sync() {
    const plan = planSync(await this.options.runner.list(), this.options.layout);
    if (plan.script) await this.options.runner.restore(plan.script);
    this.insertAt = plan.insertAt;
    for (const entry of plan.adopted) {
      this.allowed.set(entry.address, entry.name);
      this.pending.delete(entry.address);
    }
    return plan;
  }
}
