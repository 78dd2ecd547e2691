/**
 * The firewall planner: (what we want, what the kernel has) → iptables-restore text.
 * Pure, so that tests compare text; applying it is one exec elsewhere.
 *
 * The kernel's side is one `iptables -S` listing of the filter table: DOCKER-USER with our
 * block, INPUT with our jump, our own chains, and FORWARD, which must send the bridge's
 * traffic through DOCKER-USER for any of it to matter (bypass.ts).
 */
import { ConfigError } from '../util/errors.js';
import type { Entry } from './backend.js';
import { findBypasses } from './bypass.js';
import {
  CHAIN,
  CLIENTS_CHAIN,
  HOST_CHAIN,
  IPV6_LINK_LOCAL,
  SOURCES_CHAIN,
  RECORD_CHAIN,
  acceptRule,
  auditedRule,
  chainOf,
  clientsRule,
  dropRule,
  establishedRule,
  hostChain,
  hostJumpRule,
  parseOwnedRule,
  policyDropRule,
  recordChain,
  recordRule,
  routeRule,
  sameNetworkRule,
  setAcceptRules,
  sourceCheckRule,
  sourcesChain,
  type OwnedRule,
} from './rules.js';
import type { Layout } from './layout.js';

export type { Layout } from './layout.js';

export type AllowEntry = Entry;

export interface SyncPlan {
  /** iptables-restore input, or undefined when the kernel already matches. */
  script: string | undefined;
  /** Addresses our accept rules already open, in chain order, with the name that opened them and their expiry. */
  adopted: AllowEntry[];
  /** 1-based position in CHAIN of our first accept rule: right after our same-network rule. */
  insertAt: number;
  /** True when our block was out of order or incomplete and is rewritten at the top. */
  rebuilt: boolean;
  /** Ways the bridge's traffic gets past our rules (bypass.ts); empty when none. */
  bypasses: string[];
}

/** Our block's fixed rules ahead of the accept rules, and after them. */
const HEAD = ['source-check', 'established', 'same-network', 'clients', 'audited'] as const;
const TAIL = ['record', 'drop'] as const;

/**
 * Make the table hold our block for `layout.bridge`, our chains, and our INPUT jump,
 * adopting the accept rules a previous run left and opening the `carry` entries too (the
 * addresses open on the bridge the network had before it was re-created: they move with
 * it, in the same transaction as the DROP). A block already in order is kept as it is;
 * otherwise all our rules for this bridge are deleted and written again at the top, oldest
 * expiry first, in one atomic restore so that no packet sees a gap. Rules for other
 * bridges and rules that are not ours are never touched. A block in order whose last rule
 * has the other verdict (audit mode switched) has only that rule replaced.
 */
export function planSync(listing: readonly string[], layout: Layout, carry: readonly AllowEntry[] = []): SyncPlan {
  requireChain(listing, layout);
  const rules = listing.filter((line) => line.startsWith('-A '));
  const block = ownBlock(rules, layout.bridge);
  const adopted = withCarried(adoptedAddresses(block.map((o) => o.rule)), carry);
  const accepts = block.filter((o) => o.rule.role === 'accept');
  const keys = accepts.map((o) => `${o.rule.address}:${o.rule.protocol}/${o.rule.port}`);
  const wantedKeys = adopted.flatMap((a) => layout.ports.map((p) => `${a.address}:${p.protocol}/${p.port}`));
  const inOrder =
    isContiguous(block, [...HEAD, ...accepts.map(() => 'accept' as const), ...TAIL]) &&
    fixedRulesRead(block, layout.bridge) &&
    oneCommentPerAddress(accepts.map((o) => o.rule)) &&
    sameSet(keys, wantedKeys) &&
    dropAheadOfReturn(block, rules);
  const support = planSupport(listing, layout);
  const lines = [...support.declarations];
  let insertAt = (block[0]?.position ?? 1) + HEAD.length;
  if (!inOrder) {
    lines.push(...block.map((o) => `-D ${CHAIN} ${o.rule.spec}`));
    const fresh = [...headRules(layout.bridge), ...byExpiry(adopted).flatMap((a) => acceptRules(a, layout)), ...tailRules(layout)];
    fresh.forEach((spec, i) => lines.push(`-I ${CHAIN} ${i + 1} ${spec}`));
    insertAt = HEAD.length + 1;
  } else lines.push(...verdictSwitch(block, layout));
  lines.push(...support.rules);
  const ordered = inOrder ? adopted : byExpiry(adopted);
  return {
    script: lines.length ? restoreScript(lines) : undefined,
    adopted: ordered,
    insertAt,
    rebuilt: !inOrder,
    bypasses: findBypasses(listing, layout.bridge, layout.subnets, { rebuilt: !inOrder }),
  };
}

/**
 * The ipset backend's block: source check, established, same-network, one accept rule
 * matching `set` on `layout.ports`, drop. Kept when it reads exactly so (ahead of any bare
 * RETURN); otherwise all our rules for the bridge are replaced in one atomic restore.
 * Per-address accept rules that a run with the iptables backend left are deleted too, and
 * their addresses returned as adopted, so that they move into the set instead of closing.
 */
export function planSetSync(listing: readonly string[], layout: Layout, set: string): Omit<SyncPlan, 'insertAt'> {
  requireChain(listing, layout);
  const rules = listing.filter((line) => line.startsWith('-A '));
  const block = ownBlock(rules, layout.bridge);
  const adopted = adoptedAddresses(block.map((o) => o.rule));
  const setRules = setAcceptRules(layout.bridge, layout.ports, set);
  const inOrder =
    isContiguous(block, [...HEAD, ...setRules.map(() => 'set-accept'), ...TAIL]) &&
    fixedRulesRead(block, layout.bridge) &&
    block.slice(HEAD.length, -TAIL.length).every((o, i) => o.rule.spec === setRules[i]) &&
    dropAheadOfReturn(block, rules);
  const support = planSupport(listing, layout);
  const lines = [...support.declarations];
  if (!inOrder) {
    const fresh = [...headRules(layout.bridge), ...setRules, ...tailRules(layout)];
    lines.push(...block.map((o) => `-D ${CHAIN} ${o.rule.spec}`), ...fresh.map((spec, i) => `-I ${CHAIN} ${i + 1} ${spec}`));
  } else lines.push(...verdictSwitch(block, layout));
  lines.push(...support.rules);
  return {
    script: lines.length ? restoreScript(lines) : undefined,
    adopted,
    rebuilt: !inOrder,
    bypasses: findBypasses(listing, layout.bridge, layout.subnets, { rebuilt: !inOrder }),
  };
}

/** An estimate of what a restore costs the kernel tools, to size batches and their time bound. */
export interface CostedScript {
  script: string;
  /** Estimated milliseconds, from bench/RESULTS.md's measurements of iptables-nft. */
  costMs: number;
}

/**
 * iptables-nft finds a rule to delete by comparing it with every rule above it, about 1.4
 * µs each (bench/RESULTS.md, "Removal cost"): deleting near the top of a 10,000-rule chain
 * costs 0.25 ms, near the bottom 14 ms. Inserting at a position walks the chain without
 * comparing. These are estimates on the generous side; the time bound is many of them.
 */
export const COST = { perRuleWalkedMs: 0.002, perInsertMs: 0.05, perDeleteMs: 0.05, budgetMs: 300 } as const;

/**
 * A batch as restores that each stay within the cost budget: the rules of `remove`, and
 * the old rules of refreshed `add` entries, are deleted as `installed` says they read;
 * then `add` is inserted at the bottom of our accept rules (just above the DROP), so that
 * the rules stay in the order they expire and expiries delete from the cheap top. A
 * refresh is a delete and an insert in the same restore, so no packet sees a gap.
 * `installed` is in chain order.
 */
export function planApply(
  add: readonly Entry[],
  remove: readonly Entry[],
  installed: ReadonlyMap<string, Entry>,
  layout: Layout,
  insertAt: number,
  chain: string = CHAIN,
): CostedScript[] {
  const ports = layout.ports.length;
  const index = new Map<string, number>();
  let i = 0;
  for (const address of installed.keys()) index.set(address, i++);
  /** Indexes already deleted in this batch, ascending: each one above a rule moves it up one place. */
  const deleted: number[] = [];
  const positionOf = (address: string) => {
    const at = index.get(address)!;
    let lo = 0;
    let hi = deleted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (deleted[mid]! < at) lo = mid + 1;
      else hi = mid;
    }
    deleted.splice(lo, 0, at);
    return insertAt + ports * (at - lo);
  };
  let count = installed.size;
  const scripts: CostedScript[] = [];
  let lines: string[] = [];
  let cost = 0;
  const flush = () => {
    if (lines.length) scripts.push({ script: restoreScript(lines), costMs: cost });
    lines = [];
    cost = 0;
  };
  const step = (entry: Entry, insert: boolean) => {
    const old = installed.get(entry.address);
    let stepCost = insert ? COST.perInsertMs * ports : 0;
    if (old) stepCost += (COST.perDeleteMs + COST.perRuleWalkedMs * positionOf(entry.address)) * ports;
    if (lines.length && cost + stepCost > COST.budgetMs) flush();
    if (old) {
      lines.push(...acceptRules(old, layout).map((spec) => `-D ${chain} ${spec}`));
      count--;
    }
    if (insert) {
      lines.push(...acceptRules(entry, layout).map((spec, p) => `-I ${chain} ${insertAt + count * ports + p} ${spec}`));
      count++;
    }
    cost += stepCost;
  };
  // Top first: each delete then finds its rule near the top of what is left.
  const removing = remove.filter((e) => installed.has(e.address)).sort((a, b) => index.get(a.address)! - index.get(b.address)!);
  for (const entry of removing) step(entry, false);
  for (const entry of add) step(entry, true);
  flush();
  return scripts;
}

/**
 * A policy's own chain (per-address rules): its accept rules, oldest expiry first, then
 * its DROP. The chain is ours whole: anything else in it, or out of order, and it is
 * written again in one restore (declaring it flushes it), keeping the addresses it had.
 */
export function planPolicySync(listing: readonly string[], layout: Layout, chain: string, carry: readonly AllowEntry[] = []): SyncPlan {
  const rules = listing.filter((line) => chainOf(line) === chain);
  const owned = rules.map(parseOwnedRule);
  const accepts = owned.filter((r): r is OwnedRule => r?.role === 'accept' && r.bridge === layout.bridge);
  const adopted = withCarried(adoptedAddresses(accepts), carry);
  const keys = accepts.map((r) => `${r.address}:${r.protocol}/${r.port}`);
  const wantedKeys = adopted.flatMap((a) => layout.ports.map((p) => `${a.address}:${p.protocol}/${p.port}`));
  const tail = policyTail(layout);
  const readsAs = (ending: readonly string[]) =>
    listing.includes(`-N ${chain}`) &&
    owned.length === rules.length &&
    owned.slice(0, -ending.length).every((r) => r?.role === 'accept' && r.bridge === layout.bridge) &&
    sameList(rules.slice(-ending.length), ending.map((spec) => `-A ${chain} ${spec}`)) &&
    oneCommentPerAddress(accepts) &&
    sameSet(keys, wantedKeys);
  if (readsAs(tail)) return { script: undefined, adopted, insertAt: 1, rebuilt: false, bypasses: [] };
  // Audit mode switched and nothing else: the verdict is replaced in place, and every accept rule keeps its counters.
  if (readsAs(policyTail({ ...layout, audit: !layout.audit }))) {
    return { script: restoreScript([`-R ${chain} ${rules.length} ${tail.at(-1)!}`]), adopted, insertAt: 1, rebuilt: false, bypasses: [] };
  }
  const fresh = [...byExpiry(adopted).flatMap((a) => acceptRules(a, layout)), ...tail];
  return {
    script: restoreScript([...recordChainExists(listing), `:${chain} - [0:0]`, ...fresh.map((spec) => `-A ${chain} ${spec}`)]),
    adopted: byExpiry(adopted),
    insertAt: 1,
    rebuilt: true,
    bypasses: [],
  };
}

/** A policy's own chain (ipset backend): one accept rule per protocol matching its set, then its DROP. */
export function planPolicySetSync(listing: readonly string[], layout: Layout, chain: string, set: string): Omit<SyncPlan, 'insertAt'> {
  const wanted = [...setAcceptRules(layout.bridge, layout.ports, set), ...policyTail(layout)].map((spec) => `-A ${chain} ${spec}`);
  const current = listing.filter((line) => chainOf(line) === chain);
  const inOrder = listing.includes(`-N ${chain}`) && sameList(current, wanted);
  const switched = [...setAcceptRules(layout.bridge, layout.ports, set), ...policyTail({ ...layout, audit: !layout.audit })].map((spec) => `-A ${chain} ${spec}`);
  // Audit mode switched and nothing else: the verdict is replaced in place, and the accept rules keep their counters.
  if (!inOrder && listing.includes(`-N ${chain}`) && sameList(current, switched)) {
    return { script: restoreScript([`-R ${chain} ${current.length} ${policyDropRule(layout.bridge, layout.audit)}`]), adopted: [], rebuilt: false, bypasses: [] };
  }
  return { script: inOrder ? undefined : restoreScript([...recordChainExists(listing), `:${chain} - [0:0]`, ...wanted]), adopted: [], rebuilt: !inOrder, bypasses: [] };
}

/**
 * ON-HIS-NAME-CLIENTS as `routes` want it: each client with a policy of its own sent to
 * that policy's chain (RETURN for the default policy: on to DOCKER-USER's own rules),
 * addresses of containers first, then the file's ranges. Written whole when it differs.
 */
export function planRoutes(listing: readonly string[], bridge: string, routes: ReadonlyArray<{ client: string; target: string }>): string | undefined {
  const wanted = routes.map((r) => `-A ${CLIENTS_CHAIN} ${routeRule(bridge, r.client, r.target)}`);
  const current = listing.filter((line) => chainOf(line) === CLIENTS_CHAIN);
  if (listing.includes(`-N ${CLIENTS_CHAIN}`) && sameList(current, wanted)) return undefined;
  return restoreScript([`:${CLIENTS_CHAIN} - [0:0]`, ...wanted]);
}

/** A policy chain jumps to the record chain, which the default policy's block fills: it must exist first. */
function recordChainExists(listing: readonly string[]): string[] {
  return listing.includes(`-N ${RECORD_CHAIN}`) ? [] : [`-N ${RECORD_CHAIN}`];
}

/** Our block's fixed rules ahead of its accept rules. */
export function headRules(bridge: string): string[] {
  return [sourceCheckRule(bridge), establishedRule(bridge), sameNetworkRule(bridge), clientsRule(bridge), auditedRule(bridge)];
}

/** Our block's last rules: the record jump and the verdict. */
export function tailRules(layout: Pick<Layout, 'bridge' | 'audit'>): string[] {
  return [recordRule(layout.bridge), dropRule(layout.bridge, layout.audit)];
}

function policyTail(layout: Layout): string[] {
  return [recordRule(layout.bridge), policyDropRule(layout.bridge, layout.audit)];
}

/** The block's rules other than accepts and its verdict read exactly as we write them. */
function fixedRulesRead(block: ReadonlyArray<{ rule: OwnedRule }>, bridge: string): boolean {
  const head = headRules(bridge);
  return block.slice(0, HEAD.length).every((o, i) => o.rule.spec === head[i]) && block.at(-2)?.rule.spec === recordRule(bridge);
}

/** The verdict of a block in order, replaced in place when audit mode switched: no other rule moves. */
function verdictSwitch(block: ReadonlyArray<{ rule: OwnedRule; position: number }>, layout: Layout): string[] {
  const last = block.at(-1)!;
  const wanted = dropRule(layout.bridge, layout.audit);
  return last.rule.spec === wanted ? [] : [`-R ${CHAIN} ${last.position} ${wanted}`];
}

function acceptRules(entry: Entry, layout: Layout): string[] {
  return layout.ports.map((port) => acceptRule(layout.bridge, entry.address, port, entry.name, entry.expiresAt));
}

/** Delete the given rules of ours; used by `on-his-name reset` and when a bridge is left. */
export function planRemoval(owned: readonly OwnedRule[]): string | undefined {
  return owned.length ? restoreScript(owned.map((r) => `-D ${r.role === 'host-jump' ? 'INPUT' : (r.chain ?? CHAIN)} ${r.spec}`)) : undefined;
}

/** Our rules in DOCKER-USER and INPUT, every bridge. */
export function ownedRules(listing: readonly string[]): OwnedRule[] {
  return listing.map(parseOwnedRule).filter((r): r is OwnedRule => r !== undefined);
}

export function restoreScript(lines: readonly string[]): string {
  return `*filter\n${lines.join('\n')}\nCOMMIT\n`;
}

function requireChain(listing: readonly string[], layout: Layout): void {
  if (listing.includes(`-N ${CHAIN}`)) return;
  const binary = layout.family === 6 ? 'ip6tables' : 'iptables';
  throw new ConfigError(
    `the ${binary} ${CHAIN} chain does not exist: start Docker (it creates the chain), use --backend nftables, or for a plain bridge ` +
      `create it with "${binary} -N ${CHAIN} && ${binary} -I FORWARD -j ${CHAIN}"`,
  );
}

/**
 * Our chains (declared, which creates or flushes them, then filled) when they do not read
 * as wanted, and our INPUT jump at the top of INPUT when it is missing. Declarations go
 * first: the block's source-check rule jumps to a chain that must exist.
 */
function planSupport(listing: readonly string[], layout: Layout): { declarations: string[]; rules: string[] } {
  const family = layout.family ?? 4;
  const want = new Map<string, string[]>([
    [SOURCES_CHAIN, sourcesChain(layout.bridge, family === 6 ? [...layout.subnets, IPV6_LINK_LOCAL] : layout.subnets)],
    [HOST_CHAIN, hostChain(layout.bridge, { family, dns: layout.dns, hostPorts: layout.hostPorts })],
    [RECORD_CHAIN, recordChain(layout.record)],
  ]);
  // The clients chain is the routes' to fill (planRoutes); here it only has to exist.
  const declarations: string[] = listing.includes(`-N ${CLIENTS_CHAIN}`) ? [] : [`-N ${CLIENTS_CHAIN}`];
  const rules: string[] = [];
  for (const [chain, specs] of want) {
    const current = listing.filter((line) => chainOf(line) === chain);
    const wanted = specs.map((spec) => `-A ${chain} ${spec}`);
    if (listing.includes(`-N ${chain}`) && sameList(current, wanted)) continue;
    declarations.push(`:${chain} - [0:0]`);
    rules.push(...wanted);
  }
  const jump = hostJumpRule(layout.bridge);
  if (!listing.includes(`-A INPUT ${jump}`)) rules.push(`-I INPUT 1 ${jump}`);
  return { declarations, rules };
}

/** Our DOCKER-USER rules for `bridge`, with their 1-based positions in the chain. */
function ownBlock(rules: readonly string[], bridge: string): Array<{ rule: OwnedRule; position: number }> {
  return rules
    .filter((line) => chainOf(line) === CHAIN)
    .map((line, index) => ({ rule: parseOwnedRule(line), position: index + 1 }))
    .filter((r): r is { rule: OwnedRule; position: number } => r.rule?.bridge === bridge && r.rule.role !== 'host-jump');
}

/** Ours read exactly `roles`, with nothing of anyone else's in between. */
function isContiguous(block: ReadonlyArray<{ rule: OwnedRule; position: number }>, roles: readonly string[]): boolean {
  if (block.length !== roles.length) return false;
  return block.every((o, i) => o.rule.role === roles[i] && o.position === block[0]!.position + i);
}

/** One comment per address, so that a refresh can delete its rules by what it wrote. */
function oneCommentPerAddress(accepts: readonly OwnedRule[]): boolean {
  const comments = new Map<string, string>();
  for (const r of accepts) {
    const comment = `${r.expiresAt ?? ''} ${r.name ?? ''}`;
    if ((comments.get(r.address!) ?? comment) !== comment) return false;
    comments.set(r.address!, comment);
  }
  return true;
}

/** Our DROP (the last of ours) comes before the bare RETURN older Docker versions end the chain with. */
function dropAheadOfReturn(block: ReadonlyArray<{ rule: OwnedRule }>, rules: readonly string[]): boolean {
  const chain = rules.filter((line) => chainOf(line) === CHAIN);
  const dropAt = chain.findIndex((line) => line === `-A ${CHAIN} ${block[block.length - 1]!.rule.spec}`);
  const bareReturnAt = chain.findIndex((line) => /^-A \S+ -j RETURN\s*$/.test(line));
  return bareReturnAt < 0 || dropAt < bareReturnAt;
}

/** One entry per address, in chain order; if its rules disagree (a rebuild follows), the latest expiry wins. */
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

/** Soonest expiry first (no expiry counts as soonest), the order our accept rules keep. */
function byExpiry(entries: readonly AllowEntry[]): AllowEntry[] {
  return [...entries].sort((a, b) => (a.expiresAt ?? -Infinity) - (b.expiresAt ?? -Infinity));
}

/**
 * Adopted entries plus carried ones for addresses the bridge's rules do not name yet. The
 * kernel's text wins for an address it has, so that later deletes match what is there.
 */
function withCarried(adopted: AllowEntry[], carry: readonly AllowEntry[]): AllowEntry[] {
  const present = new Set(adopted.map((e) => e.address));
  return [...adopted, ...carry.filter((e) => !present.has(e.address))];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((line, i) => line === b[i]);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return set.size === a.length && b.every((key) => set.has(key));
}
