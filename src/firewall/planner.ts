/**
 * The firewall planner: (what we want, what the kernel has) → iptables-restore text.
 * Pure, so that tests compare text; applying it is one exec elsewhere.
 */
import { CHAIN, acceptRule, dropRule, establishedRule, parseOwnedRule, sameNetworkRule, type OwnedRule } from './rules.js';

export interface Layout {
  bridge: string;
  ports: readonly number[];
  /** Address family of the table (iptables 4, ip6tables 6); 4 when absent. */
  family?: 4 | 6;
}

export interface AllowEntry {
  address: string;
  name?: string;
}

export interface SyncPlan {
  /** iptables-restore input, or undefined when the kernel already matches. */
  script: string | undefined;
  /** Addresses our accept rules already open, with the name that opened them. */
  adopted: AllowEntry[];
  /** 1-based position in CHAIN where new accept rules go: right after our same-network rule. */
  insertAt: number;
  /** True when our block was out of order or incomplete and is rewritten at the top. */
  rebuilt: boolean;
}

/**
 * Make CHAIN hold our block for `layout.bridge`, adopting the accept rules a previous run
 * left. If the block is already in order (and ahead of any trailing RETURN) it is kept
 * and only ports are brought in line; otherwise all our rules for this bridge are deleted
 * and written again at the top, in one atomic restore so that no packet sees a gap.
 * Rules for other bridges and rules that are not ours are never touched.
 */
export function planSync(listing: readonly string[], layout: Layout): SyncPlan {
  const rules = listing.filter((line) => line.startsWith('-A '));
  const owned = rules
    .map((line, index) => ({ rule: parseOwnedRule(line), position: index + 1 }))
    .filter((r): r is { rule: OwnedRule; position: number } => r.rule?.bridge === layout.bridge);
  const adopted = adoptedAddresses(owned.map((o) => o.rule));

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
    ...adopted.flatMap((a) => layout.ports.map((port) => acceptRule(layout.bridge, a.address, port, a.name))),
    dropRule(layout.bridge),
  ];
  block.forEach((spec, i) => lines.push(`-I ${CHAIN} ${i + 1} ${spec}`));
  return { script: restoreScript(lines), adopted, insertAt: 3, rebuilt: true };
}

/** New accept rules, one per address and port, inserted just ahead of our DROP. */
export function planAllow(entries: readonly AllowEntry[], layout: Layout, insertAt: number): string {
  return restoreScript(
    entries.flatMap((e) => layout.ports.map((port) => `-I ${CHAIN} ${insertAt} ${acceptRule(layout.bridge, e.address, port, e.name)}`)),
  );
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
  const keys = owned.filter((r) => r.role === 'accept').map((r) => `${r.address}:${r.port}`);
  if (new Set(keys).size !== keys.length) return false;
  const dropAt = rules.findIndex((line) => line.includes(owned[last]!.spec));
  const bareReturnAt = rules.findIndex((line) => /^-A \S+ -j RETURN\s*$/.test(line));
  return bareReturnAt < 0 || dropAt < bareReturnAt;
}

function adoptedAddresses(owned: readonly OwnedRule[]): AllowEntry[] {
  const byAddress = new Map<string, AllowEntry>();
  for (const rule of owned) {
    if (rule.role !== 'accept' || !rule.address || byAddress.has(rule.address)) continue;
    byAddress.set(rule.address, rule.name ? { address: rule.address, name: rule.name } : { address: rule.address });
  }
  return [...byAddress.values()];
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
      lines.push(`-I ${CHAIN} ${insertAt} ${acceptRule(layout.bridge, entry.address, port, entry.name)}`);
    }
  }
  return lines;
}
