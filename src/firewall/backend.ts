/**
 * The seam between the Firewall (which addresses, until when, in what batches) and a
 * backend that does the kernel work (iptables rules today; an ipset or ip6tables flavour
 * fits the same shape). A backend keeps no policy: it installs what it is told and
 * reports what the kernel holds, which is the single source of truth.
 */
import type { Layout } from './layout.js';

export interface Entry {
  address: string;
  name?: string;
  /** wall-clock unix seconds */
  expiresAt?: number;
}

/** Packets and bytes the kernel counted for one address: the first packet of each new connection. */
export interface Counters {
  packets: number;
  bytes: number;
}

export interface SyncResult {
  /** The entries already in the kernel, in the order the backend keeps them. */
  adopted: Entry[];
  /** True when the base rules were missing or damaged and were written again. */
  rebuilt: boolean;
  /**
   * Ways the bridge's traffic gets past our rules that we must not fix ourselves (someone
   * else's rule ahead of ours, a chain nothing jumps to); empty or absent when none.
   */
  bypasses?: string[];
}

export interface FirewallBackend {
  /** The bridge and ports the block is for; moveTo changes the bridge. */
  readonly layout: Layout;
  /** Where the rules live, for the logs: "in DOCKER-USER", "in table inet on-his-name". */
  readonly where: string;
  /** Install or repair the base rules; return the entries already in the kernel (adopted) and whether the base was rebuilt. */
  sync(): Promise<SyncResult>;
  /** One kernel transaction: put `add` in (new, or refreshed expiry) and take `remove` out. Throws ApplyError on failure. */
  apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void>;
  /** The kernel's counters per address we own, read fresh; for the admin API. */
  counters?(): Promise<Map<string, Counters>>;
  /**
   * Follow the network to a new bridge (or new subnets): install the block for `layout`
   * with every `open` address first, then remove our rules that name the bridge it
   * leaves, so that nothing opens in between. Safe to call again after a failure (it
   * finishes what is left); returns what the kernel now holds, as sync() does.
   */
  moveTo(layout: Layout, open: readonly Entry[]): Promise<SyncResult>;
}
