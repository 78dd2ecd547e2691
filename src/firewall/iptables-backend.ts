/**
 * The iptables backend: per-address ACCEPT rules in DOCKER-USER, planned by planner.ts
 * and applied by the runner in one iptables-restore per call. It remembers how each
 * address's rules read (as written or as listed) so that a refresh or removal can
 * delete them by their exact text; sync() reads that again from the kernel.
 */
import type { Counters, Entry, FirewallBackend } from './backend.js';
import { ruleCounters } from './counters.js';
import type { IptablesRunner } from './iptables.js';
import { planApply, planSync, type Layout } from './planner.js';
import { removeOwnedRules } from './reset.js';

export class IptablesBackend implements FirewallBackend {
  private installed = new Map<string, Entry>();
  private insertAt = 3;
  /** Bridges the network has left whose rules are still to be removed. */
  private readonly leaving = new Set<string>();

  constructor(
    private readonly runner: IptablesRunner,
    private current: Layout,
  ) {}

  get layout(): Layout {
    return this.current;
  }

  sync(): Promise<{ adopted: Entry[]; rebuilt: boolean }> {
    return this.install([]);
  }

  async apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void> {
    const script = planApply(add, remove, this.installed, this.current, this.insertAt);
    if (script) await this.runner.restore(script);
    for (const entry of remove) this.installed.delete(entry.address);
    for (const entry of add) this.installed.set(entry.address, entry);
  }

  async moveTo(bridge: string, open: readonly Entry[]): Promise<{ adopted: Entry[]; rebuilt: boolean }> {
    if (bridge !== this.current.bridge) {
      this.leaving.add(this.current.bridge);
      this.current = { ...this.current, bridge };
    }
    this.leaving.delete(bridge);
    // The new block first, with every open address and its DROP, in one restore…
    const installed = await this.install(open);
    // …then the old bridge's rules, which only matter to a bridge that no longer carries the network.
    for (const old of this.leaving) {
      await removeOwnedRules(this.runner, old);
      this.leaving.delete(old);
    }
    return installed;
  }

  /** Read with iptables-save, whose -c prints counters per rule; empty if the runner cannot save. */
  async counters(): Promise<Map<string, Counters>> {
    const text = this.runner.save ? await this.runner.save() : '';
    return ruleCounters(text, this.current.bridge);
  }

  private async install(carry: readonly Entry[]): Promise<{ adopted: Entry[]; rebuilt: boolean }> {
    const plan = planSync(await this.runner.list(), this.current, carry);
    if (plan.script) await this.runner.restore(plan.script);
    this.insertAt = plan.insertAt;
    this.installed = new Map(plan.adopted.map((entry) => [entry.address, entry]));
    return { adopted: plan.adopted, rebuilt: plan.rebuilt };
  }
}
