/**
 * `--backend ipset`: allowed addresses live in one ipset (see ipset.ts), matched by one
 * rule in our DOCKER-USER block, so the cost per packet stays flat however many addresses
 * are open (bench/RESULTS.md, "Packet path cost"). The set is created before the rule
 * that names it, and elements expire in the kernel on their own timeout.
 */
import { ConfigError } from '../errors.js';
import type { Counters, Entry, FirewallBackend } from './backend.js';
import { setCounters } from './counters.js';
import type { IptablesRunner } from './iptables.js';
import { DEFAULT_MAX_ELEMENTS, SET_V4, adoptedEntries, createLine, incompatibility, parseSave, renderApply } from './ipset.js';
import type { IpsetRunner } from './ipset-runner.js';
import { planSetSync, type Layout } from './planner.js';

export interface IpsetBackendOptions {
  iptables: IptablesRunner;
  ipset: IpsetRunner;
  layout: Layout;
  /** Default on-his-name-v4. */
  set?: string;
  /** The set's maxelem when on-his-name creates it. */
  maxElements?: number;
  /** Wall-clock unix seconds; injectable for tests. */
  nowSeconds?: () => number;
}

export class IpsetBackend implements FirewallBackend {
  readonly set: string;
  private readonly now: () => number;

  constructor(private readonly options: IpsetBackendOptions) {
    this.set = options.set ?? SET_V4;
    this.now = options.nowSeconds ?? (() => Date.now() / 1000);
  }

  async sync(): Promise<{ adopted: Entry[]; rebuilt: boolean }> {
    const { ipset, iptables, layout } = this.options;
    const saved = parseSave((await ipset.save(this.set)) ?? '', this.set);
    if (saved) {
      const why = incompatibility(saved.header);
      if (why) {
        throw new ConfigError(
          `the ipset "${this.set}" exists but cannot be used: it ${why}; remove it and our rules with ` +
            `"on-his-name reset", then start again`,
        );
      }
    } else {
      await ipset.restore(`${createLine(this.set, this.options.maxElements ?? DEFAULT_MAX_ELEMENTS)}\n`);
    }
    const plan = planSetSync(await iptables.list(), layout, this.set);
    const now = this.now();
    const inSet = adoptedEntries(saved?.elements ?? [], now);
    // Addresses a run of the iptables backend opened move into the set before their rules go.
    const known = new Set(inSet.map((e) => e.address));
    const moved = plan.adopted.filter((a) => !known.has(a.address));
    if (moved.length) await ipset.restore(renderApply(this.set, moved, [], now));
    if (plan.script) await iptables.restore(plan.script);
    return { adopted: [...inSet, ...moved], rebuilt: !saved || plan.rebuilt };
  }

  async apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void> {
    await this.options.ipset.restore(renderApply(this.set, add, remove, this.now()));
  }

  async counters(): Promise<Map<string, Counters>> {
    return setCounters((await this.options.ipset.save(this.set)) ?? '', this.set);
  }
}

/**
 * For `on-his-name reset`, after our rules are gone (the kernel refuses to destroy a set a
 * rule still names): true when the set was there. No ipset installed means no set to remove.
 */
export async function destroyOwnedSet(ipset: IpsetRunner, set: string = SET_V4): Promise<boolean> {
  try {
    return await ipset.destroy(set);
  } catch (err) {
    if (err instanceof ConfigError && /not found: install it/.test(err.message)) return false;
    throw err;
  }
}
