/**
 * `--backend nftables`: one family's side of our table (table.ts). Its set holds every
 * open address of the family with a timeout, so the kernel closes an address on time even
 * while the daemon is down, a counter, and the name that opened it; a lookup costs the same
 * whatever the number of addresses (bench/RESULTS.md, "Packet path cost").
 */
import type { Counters, Entry, FirewallBackend, SyncResult } from '../backend.js';
import type { Layout } from '../planner.js';
import type { NftListing } from './listing.js';
import { DEFAULT_POLICY, renderElements, renderReplace, setName } from './render.js';
import type { NftTable } from './table.js';

export interface NftBackendOptions {
  table: NftTable;
  family: 4 | 6;
  /** Whose addresses: the default policy's (sets allow4, allow6) unless named. */
  policy?: string;
  /** Wall-clock unix seconds; injectable for tests. */
  nowSeconds?: () => number;
}

/** A batch's time bound: the usual 5 s, or more for a very large one (nft takes about 60 µs an element). */
function timeoutFor(elements: number): number {
  return Math.max(5_000, elements);
}

export class NftablesBackend implements FirewallBackend {
  get where(): string {
    return `in table inet on-his-name (set ${setName(this.policy, this.family)})`;
  }
  private readonly family: 4 | 6;
  private readonly now: () => number;
  /** Addresses the set holds, as last read or written: a refresh of one of them re-adds it. */
  private readonly installed = new Set<string>();

  private readonly policy: string;

  constructor(private readonly options: NftBackendOptions) {
    this.family = options.family;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.now = options.nowSeconds ?? (() => Date.now() / 1000);
  }

  /** The family's layout as the rest of the firewall reads it (bridge, its policy's ports, subnets). */
  get layout(): Layout {
    const nft = this.options.table.layout;
    return {
      bridge: nft.bridge,
      ports: this.policy === DEFAULT_POLICY ? nft.ports : (nft.policies?.find((p) => p.name === this.policy)?.ports ?? []),
      family: this.family,
      subnets: nft[this.family].subnets,
      dns: nft[this.family].dns,
      hostPorts: nft.hostPorts,
    };
  }

  async sync(): Promise<SyncResult> {
    const { listing, rebuilt } = await this.options.table.ensure();
    const adopted = this.adopted(listing);
    this.installed.clear();
    for (const entry of adopted) this.installed.add(entry.address);
    return { adopted, rebuilt };
  }

  async apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void> {
    const now = this.now();
    const inPlace = await this.options.table.updatesTimeoutInPlace();
    const refresh = inPlace ? [] : add.filter((e) => this.installed.has(e.address));
    const fresh = inPlace ? add : add.filter((e) => !this.installed.has(e.address));
    const script = renderElements(this.family, fresh, remove, now, this.policy) + renderReplace(this.family, refresh, now, this.policy);
    await this.options.table.runner.apply(script, { timeoutMs: timeoutFor(add.length + remove.length) });
    for (const entry of remove) this.installed.delete(entry.address);
    for (const entry of add) this.installed.add(entry.address);
  }

  async counters(): Promise<Map<string, Counters>> {
    const counters = new Map<string, Counters>();
    for (const element of (await this.options.table.read()).sets.get(setName(this.policy, this.family))?.elements ?? []) {
      if (element.packets !== undefined && element.bytes !== undefined) counters.set(element.address, { packets: element.packets, bytes: element.bytes });
    }
    return counters;
  }

  /** The addresses stay in the set, which is no bridge's; the chains move, in one transaction. */
  async moveTo(layout: Layout): Promise<SyncResult> {
    this.options.table.update(layout.bridge, this.family, { subnets: layout.subnets, dns: layout.dns });
    return this.sync();
  }

  private adopted(listing: NftListing): Entry[] {
    const now = this.now();
    return (listing.sets.get(setName(this.policy, this.family))?.elements ?? []).map((e) => ({
      address: e.address,
      ...(e.comment ? { name: e.comment } : {}),
      ...(e.expires !== undefined ? { expiresAt: Math.floor(now) + e.expires } : {}),
    }));
  }
}
