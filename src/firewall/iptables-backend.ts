/**
 * The iptables backend: per-address ACCEPT rules in DOCKER-USER (the default policy) or
 * in a policy's own chain, planned by planner.ts and applied by the runner. It remembers
 * how each address's rules read (as written or as listed), in chain order, so that a
 * refresh or removal can delete them by their exact text and know what that costs; sync()
 * reads all of it again from the kernel.
 */
import type { Counters, Entry, FirewallBackend, SyncResult } from './backend.js';
import { ruleCounters } from './counters.js';
import type { IptablesRunner } from './iptables.js';
import { planApply, planPolicySync, planSync, type Layout } from './planner.js';
import { CHAIN } from './rules.js';
import { removeOwnedRules } from './reset.js';

/** The time bound of a restore: many times its estimated cost, never less than the usual 5 s. */
export function restoreTimeoutMs(costMs: number): number {
  return Math.max(5_000, Math.ceil(20 * costMs));
}

export class IptablesBackend implements FirewallBackend {
  readonly where: string;
  /** What our accept rules hold, in chain order (oldest expiry at the top). */
  private installed = new Map<string, Entry>();
  private insertAt = 4;
  /** Bridges the network has left whose rules are still to be removed. */
  private readonly leaving = new Set<string>();

  /** `chain`: a policy's own chain instead of DOCKER-USER's block. */
  constructor(
    private readonly runner: IptablesRunner,
    private current: Layout,
    private readonly chain?: string,
  ) {
    this.where = `in ${chain ?? CHAIN}`;
  }

  get layout(): Layout {
    return this.current;
  }

  sync(): Promise<SyncResult> {
    return this.install([]);
  }

  /** Restores sized to the cost budget, each with a time bound that fits it. */
  async apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void> {
    for (const { script, costMs } of planApply(add, remove, this.installed, this.current, this.insertAt, this.chain)) {
      await this.runner.restore(script, { timeoutMs: restoreTimeoutMs(costMs) });
    }
    for (const entry of remove) this.installed.delete(entry.address);
    for (const entry of add) {
      this.installed.delete(entry.address);
      this.installed.set(entry.address, entry);
    }
  }

  async moveTo(layout: Layout, open: readonly Entry[]): Promise<SyncResult> {
    if (layout.bridge !== this.current.bridge) this.leaving.add(this.current.bridge);
    this.current = layout;
    this.leaving.delete(layout.bridge);
    // The new block first, with every open address and its DROP, in one restore…
    const installed = await this.install(open);
    // …then the old bridge's rules, which only matter to a bridge that no longer carries the network.
    for (const old of this.chain ? [] : this.leaving) {
      await removeOwnedRules(this.runner, old);
      this.leaving.delete(old);
    }
    return installed;
  }

  /** Read with iptables-save, whose -c prints counters per rule; empty if the runner cannot save. */
  async counters(): Promise<Map<string, Counters>> {
    const text = this.runner.save ? await this.runner.save() : '';
    return ruleCounters(text, this.current.bridge, this.chain);
  }

  private async install(carry: readonly Entry[]): Promise<SyncResult> {
    const listing = await this.runner.list();
    const plan = this.chain ? planPolicySync(listing, this.current, this.chain, carry) : planSync(listing, this.current, carry);
    if (plan.script) await this.runner.restore(plan.script, { timeoutMs: restoreTimeoutMs(plan.adopted.length * this.current.ports.length) });
    this.insertAt = plan.insertAt;
    this.installed = new Map(plan.adopted.map((entry) => [entry.address, entry]));
    return { adopted: plan.adopted, rebuilt: plan.rebuilt, bypasses: plan.bypasses };
  }
}
