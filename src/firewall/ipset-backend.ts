/**
 * `--backend ipset`: allowed addresses live in one ipset per family (see ipset.ts: the
 * layout's family picks on-his-name-v4 or -v6 and iptables or ip6tables), matched by one
 * rule in our DOCKER-USER block, so the cost per packet stays flat however many addresses
 * are open (bench/RESULTS.md, "Packet path cost"). The set is created before the rule
 * that names it, and elements expire in the kernel on their own timeout.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../util/errors.js';
import type { Counters, Entry, FirewallBackend, SyncResult } from './backend.js';
import { setCounters } from './counters.js';
import type { IptablesRunner } from './iptables.js';
import { createHash } from 'node:crypto';
import { DEFAULT_MAX_ELEMENTS, GROW_SET_PREFIX, SET_V4, adoptedEntries, createLine, incompatibility, parseSave, renderApply, setFor, type Family } from './ipset.js';
import type { IpsetRunner } from './ipset-runner.js';
import { planPolicySetSync, planSetSync, type Layout } from './planner.js';
import { removeOwnedRules } from './reset.js';

export interface IpsetBackendOptions {
  /** Says when an existing set had to grow. */
  log?: Logger;
  iptables: IptablesRunner;
  ipset: IpsetRunner;
  layout: Layout;
  /** Default on-his-name-v4, or -v6 for a layout of family 6; a policy's own: ohn-p-NAME-v4. */
  set?: string;
  /** A policy's own chain for the set's rules, instead of DOCKER-USER's block. */
  chain?: string;
  /** The set's maxelem when on-his-name creates it. */
  maxElements?: number;
  /** Wall-clock unix seconds; injectable for tests. */
  nowSeconds?: () => number;
}

export class IpsetBackend implements FirewallBackend {
  readonly set: string;
  private readonly family: Family;
  private readonly now: () => number;
  private current: Layout;
  /** Bridges the network has left whose rules are still to be removed. */
  private readonly leaving = new Set<string>();

  constructor(private readonly options: IpsetBackendOptions) {
    this.family = options.layout.family ?? 4;
    this.set = options.set ?? setFor(this.family);
    this.now = options.nowSeconds ?? (() => Date.now() / 1000);
    this.current = options.layout;
  }

  get where(): string {
    return `in ${this.options.chain ?? 'DOCKER-USER'} and ipset ${this.set}`;
  }

  get layout(): Layout {
    return this.current;
  }

  async sync(): Promise<SyncResult> {
    const { ipset, iptables } = this.options;
    const layout = this.current;
    const maxElements = this.options.maxElements ?? DEFAULT_MAX_ELEMENTS;
    const saved = parseSave((await ipset.save(this.set)) ?? '', this.set);
    if (saved) {
      const why = incompatibility(saved.header, this.family);
      if (why) {
        throw new ConfigError(
          `the ipset "${this.set}" exists but cannot be used: it ${why}; remove it and our rules with ` +
            `"on-his-name reset", then start again`,
        );
      }
      // A set made smaller than --max-ips would fill up and refuse every later batch.
      if ((saved.header.maxelem ?? 65_536) < maxElements) await this.grow(saved.elements.length, maxElements);
    } else {
      await ipset.restore(`${createLine(this.set, maxElements, this.family)}\n`);
    }
    const listing = await iptables.list();
    const plan = this.options.chain ? planPolicySetSync(listing, layout, this.options.chain, this.set) : planSetSync(listing, layout, this.set);
    const now = this.now();
    const inSet = adoptedEntries(saved?.elements ?? [], now);
    // Addresses a run of the iptables backend opened move into the set before their rules go.
    const known = new Set(inSet.map((e) => e.address));
    const moved = plan.adopted.filter((a) => !known.has(a.address));
    if (moved.length) await ipset.restore(renderApply(this.set, moved, [], now));
    if (plan.script) await iptables.restore(plan.script);
    return { adopted: [...inSet, ...moved], rebuilt: !saved || plan.rebuilt, bypasses: plan.bypasses };
  }

  /**
   * Swap in a copy of the set with room for `maxElements`: the rule keeps naming the same
   * set, every element keeps its timeout, comment and counters, and no packet sees it empty.
   */
  private async grow(elements: number, maxElements: number): Promise<void> {
    const { ipset } = this.options;
    const spare = `${GROW_SET_PREFIX}${createHash('sha256').update(this.set).digest('hex').slice(0, 16)}`;
    const saved = (await ipset.save(this.set)) ?? '';
    const copy = saved
      .split('\n')
      .filter((line) => line.startsWith(`add ${this.set} `))
      .map((line) => line.replace(`add ${this.set} `, `add ${spare} `));
    await ipset.destroy(spare).catch(() => false);
    await ipset.restore(`${createLine(spare, maxElements, this.family)}\n${copy.join('\n')}${copy.length ? '\n' : ''}swap ${spare} ${this.set}\ndestroy ${spare}\n`);
    this.options.log?.warn({ set: this.set, elements, maxElements }, `the ipset ${this.set} had too little room for --max-ips: moved its elements into a larger one`);
  }

  async apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void> {
    await this.options.ipset.restore(renderApply(this.set, add, remove, this.now()));
  }

  async counters(): Promise<Map<string, Counters>> {
    return setCounters((await this.options.ipset.save(this.set)) ?? '', this.set);
  }

  /** The addresses stay in the set, which is no bridge's; only the block moves, new one first. */
  async moveTo(layout: Layout): Promise<SyncResult> {
    if (layout.bridge !== this.current.bridge) this.leaving.add(this.current.bridge);
    this.current = layout;
    this.leaving.delete(layout.bridge);
    const installed = await this.sync();
    for (const old of this.options.chain ? [] : this.leaving) {
      await removeOwnedRules(this.options.iptables, old);
      this.leaving.delete(old);
    }
    return installed;
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
