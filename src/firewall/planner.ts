/**
 * The firewall planner: (what we want, what the kernel has) → iptables-restore text.
 * Pure, so that tests compare text; applying it is one exec elsewhere.
 */
import type { Entry } from './backend.js';
import { CHAIN, acceptRule, dropRule, establishedRule, parseOwnedRule, sameNetworkRule, setAcceptRule, type OwnedRule } from './rules.js';

export interface Layout {
  bridge: string;
  ports: readonly number[];
  /** Address family of the table (iptables 4, ip6tables 6); 4 when absent. */
  family?: 4 | 6;
}

export type AllowEntry = Entry;

export interface SyncPlan {
  /** iptables-restore input, or undefined when the kernel already matches. */
  script: string | undefined;
  /** Addresses our accept rules already open, with the name that opened them and their expiry. */
  adopted: AllowEntry[];
  /** 1-based position in CHAIN where new accept rules go: right after our same-network rule. */
  insertAt: number;
  /** True when our block was out of order or incomplete and is rewritten at the top. */
  rebuilt: boolean;
}

/**
 * Make CHAIN hold our block for `layout.bridge`, adopting the accept rules a previous run
 * left, and opening the `carry` entries too (the addresses open on the bridge the network
 * had before it was re-created: they move with it, in the same transaction as the DROP).
 * If the block is already in order (and ahead of any trailing RETURN) it is kept and only
 * ports are brought in line; otherwise all our rules for this bridge are deleted
 * and written again at the top, in one atomic restore so that no packet sees a gap.
 * Rules for other bridges and rules that are not ours are never touched.
 */
export function planSync(listing: readonly string[], layout: Layout, carry: readonly AllowEntry[] = []): SyncPlan {
  const rules = listing.filter((line) => line.startsWith('-A '));
  const owned = rules
    .map((line, index) => ({ rule: parseOwnedRule(line), position: index + 1 }))
    .filter((r): r is { rule: OwnedRule; position: number } => r.rule?.bridge === layout.bridge);
  const adopted = withCarried(adoptedAddresses(owned.map((o) => o.rule)), carry);

  if (isInOrder(owned.map((o) => o.rule), rules)) {
    const sameNetwork = owned.find((o) => o.rule.role === 'same-network');
    const insertAt = (sameNetwork?.position ?? 2) + 1;
    const lines = reconcilePorts(owned.map((o) => o.rule), adopted, layout, insertAt);
    return { script: lines.length ? restoreScript(lines) : undefined, adopted, insertAt, rebuilt: false };
  }

  const lines = owned.map((o) => `-D ${CHAIN} ${o.rule.spec}`);
  const block = [
    establishedRule(layout.bridge),
    sameNetworkRule(layout.bridge),
    ...adopted.flatMap((a) => acceptRules(a, layout)),
    dropRule(layout.bridge),
  ];
  block.forEach((spec, i) => lines.push(`-I ${CHAIN} ${i + 1} ${spec}`));
  return { script: restoreScript(lines), adopted, insertAt: 3, rebuilt: true };
}

/**
 * The ipset backend's block: established, same-network, one accept rule matching `set` on
 * `layout.ports`, drop. Kept when it reads exactly so (ahead of any bare RETURN); otherwise
 * all our rules for the bridge are replaced in one atomic restore. Per-address accept rules
 * that a run with the iptables backend left are deleted too, and their addresses returned
 * as adopted, so that they move into the set instead of closing.
 */
export function planSetSync(listing: readonly string[], layout: Layout, set: string): Omit<SyncPlan, 'insertAt'> {
  const rules = listing.filter((line) => line.startsWith('-A '));
  const owned = ownedRules(rules).filter((r) => r.bridge === layout.bridge);
  const adopted = adoptedAddresses(owned);
  const roles = owned.map((r) => r.role).join(' ');
  const setRule = owned.find((r) => r.role === 'set-accept');
  const inOrder =
    roles === 'established same-network set-accept drop' &&
    setRule?.set === set &&
    setRule.ports === layout.ports.join(',') &&
    dropAheadOfReturn(owned, rules);
  if (inOrder) return { script: undefined, adopted, rebuilt: false };
  const block = [establishedRule(layout.bridge), sameNetworkRule(layout.bridge), setAcceptRule(layout.bridge, layout.ports, set), dropRule(layout.bridge)];
  const lines = [...owned.map((r) => `-D ${CHAIN} ${r.spec}`), ...block.map((spec, i) => `-I ${CHAIN} ${i + 1} ${spec}`)];
  return { script: restoreScript(lines), adopted, rebuilt: true };
}

/** New accept rules, one per address and port, inserted just ahead of our DROP. */
export function planAllow(entries: readonly AllowEntry[], layout: Layout, insertAt: number): string {
  return restoreScript(entries.flatMap((e) => acceptRules(e, layout).map((spec) => `-I ${CHAIN} ${insertAt} ${spec}`)));
}

/**
 * One transaction for a batch: the rules of `remove`, and the old rules of refreshed
 * `add` entries, are deleted as `installed` says they read; then `add` is inserted. A
 * refresh is a delete and an insert in the same restore, so no packet sees a gap.
 */
export function planApply(
  add: readonly Entry[],
  remove: readonly Entry[],
  installed: ReadonlyMap<string, Entry>,
  layout: Layout,
  insertAt: number,
): string | undefined {
  const lines: string[] = [];
  for (const entry of [...remove, ...add]) {
    const old = installed.get(entry.address);
    if (old) lines.push(...acceptRules(old, layout).map((spec) => `-D ${CHAIN} ${spec}`));
  }
  // Deleted accepts sit below our same-network rule, so insertAt stays right.
  for (const entry of add) lines.push(...acceptRules(entry, layout).map((spec) => `-I ${CHAIN} ${insertAt} ${spec}`));
  return lines.length ? restoreScript(lines) : undefined;
}

function acceptRules(entry: Entry, layout: Layout): string[] {
  return layout.ports.map((port) => acceptRule(layout.bridge, entry.address, port, entry.name, entry.expiresAt));
}

/** Delete the given rules of ours (all bridges); used by `on-his-name reset`. */
export function planRemoval(owned: readonly OwnedRule[]): string | undefined {
  return owned.length ? restoreScript(owned.map((r) => `-D ${CHAIN} ${r.spec}`)) : undefined;
}

export function ownedRules(listing: readonly string[]): OwnedRule[] {
  return listing.map(parseOwnedRule).filter((r): r is OwnedRule => r !== undefined);
}

export function restoreScript(lines: readonly string[]): string {
  return `*filter\n${lines.join('\n')}\nCOMMIT\n`;
}

/** Ours read established, same-network, accepts, drop — each once — ahead of any bare RETURN. */
function isInOrder(owned: readonly OwnedRule[], rules: readonly string[]): boolean {
  const roles = owned.map((r) => r.role);
  const last = roles.length - 1;
  if (roles[0] !== 'established' || roles[1] !== 'same-network' || roles[last] !== 'drop') return false;
  if (roles.slice(2, last).some((role) => role !== 'accept')) return false;
  const accepts = owned.filter((r) => r.role === 'accept');
  const keys = accepts.map((r) => `${r.address}:${r.port}`);
  if (new Set(keys).size !== keys.length) return false;
  // One comment per address, so that a refresh can delete its rules by what it wrote.
  const comments = new Map<string, string>();
  for (const r of accepts) {
    const comment = `${r.expiresAt ?? ''} ${r.name ?? ''}`;
    if ((comments.get(r.address!) ?? comment) !== comment) return false;
    comments.set(r.address!, comment);
  }
  return dropAheadOfReturn(owned, rules);
}

/** Our DROP (the last of ours) comes before the bare RETURN older Docker versions end the chain with. */
function dropAheadOfReturn(owned: readonly OwnedRule[], rules: readonly string[]): boolean {
  const dropAt = rules.findIndex((line) => line.includes(owned[owned.length - 1]!.spec));
  const bareReturnAt = rules.findIndex((line) => /^-A \S+ -j RETURN\s*$/.test(line));
  return bareReturnAt < 0 || dropAt < bareReturnAt;
}

/** One entry per address; if its rules disagree (a rebuild follows), the latest expiry wins. */
function adoptedAddresses(owned: readonly OwnedRule[]): AllowEntry[] {
  const byAddress = new Map<string, AllowEntry>();
  for (const rule of owned) {
    if (rule.role !== 'accept' || !rule.address) continue;
    const seen = byAddress.get(rule.address);
    if (seen && (rule.expiresAt ?? -1) <= (seen.expiresAt ?? -1)) continue;
    byAddress.set(rule.address, {
      address: rule.address,
      ...(rule.name ? { name: rule.name } : {}),
      ...(rule.expiresAt !== undefined ? { expiresAt: rule.expiresAt } : {}),
    });
  }
  return [...byAddress.values()];
}

/**
 * Adopted entries plus carried ones for addresses the bridge's rules do not name yet. The
 * kernel's text wins for an address it has, so that later deletes match what is there.
 */
function withCarried(adopted: AllowEntry[], carry: readonly AllowEntry[]): AllowEntry[] {
  const present = new Set(adopted.map((e) => e.address));
  return [...adopted, ...carry.filter((e) => !present.has(e.address))];
}

/** After a restart with other --ports: open the new ports for adopted addresses, close the old. */
function reconcilePorts(owned: readonly OwnedRule[], adopted: readonly AllowEntry[], layout: Layout, insertAt: number): string[] {
  const wanted = new Set(layout.ports);
  const lines = owned
    .filter((r) => r.role === 'accept' && !wanted.has(r.port ?? -1))
    .map((r) => `-D ${CHAIN} ${r.spec}`);
  const present = new Set(owned.filter((r) => r.role === 'accept').map((r) => `${r.address}:${r.port}`));
  // Deleted accepts sit below our same-network rule, so insertAt stays right.
  for (const entry of adopted) {
    for (const port of layout.ports) {
      if (present.has(`${entry.address}:${port}`)) continue;
      lines.push(`-I ${CHAIN} ${insertAt} ${acceptRule(layout.bridge, entry.address, port, entry.name, entry.expiresAt)}`);
    }
  }
  return lines;
}
