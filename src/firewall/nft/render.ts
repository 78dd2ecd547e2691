/**
 * The nftables backend's table, as `nft -f` text, and what to read back from `nft -j list
 * table`. Pure; no I/O.
 *
 * Everything lives in one table of our own, so nothing of anyone else's is ever touched,
 * and a drop in any base chain on a hook is final for the packet whatever other tables
 * (Docker's iptables or nftables backend, a host firewall) accept:
 *
 *   table inet on-his-name
 *     set allow4 / allow6       open addresses: per-element timeout, counter, and the name as comment
 *     chain forward  (hook forward, priority filter)   iifname BR jump egress-BR
 *     chain input    (hook input, priority filter)     iifname BR jump host-BR
 *     chain egress-BR   source outside the network → drop; established → accept;
 *                       to the same bridge → accept; to an address of the set on a
 *                       configured protocol and port → accept; the rest → counter drop
 *     chain host-BR     neighbour discovery, source check, established, DNS to the
 *                       gateway, --host-ports → accept; the rest → drop
 *
 * Our accept only means "no objection here": other tables still have their say. Each rule
 * carries a comment, `on-his-name ROLE #HASH`, the hash of the rule's own text, so that a
 * reconcile finds a chain someone edited (a rule changed, added or removed) from the
 * comments alone, the one part of a rule nft lists back exactly as written.
 */
import { createHash } from 'node:crypto';
import type { Entry } from '../backend.js';
import { IPV6_LINK_LOCAL, TAG, type DnsTarget, type PortSpec } from '../rules.js';

export const TABLE = 'on-his-name';
export const FAMILY = 'inet';
export const SETS = { 4: 'allow4', 6: 'allow6' } as const;
/** nft refuses longer comments. */
const MAX_COMMENT = 128;
const SAFE_NAME = /^[a-z0-9._-]+$/;

export interface FamilyView {
  subnets: readonly string[];
  dns: readonly DnsTarget[];
}

/** What the table filters: one bridge, both families, the ports opened per address and on the host. */
export interface NftLayout {
  bridge: string;
  ports: readonly PortSpec[];
  hostPorts: readonly PortSpec[];
  4: FamilyView;
  6: FamilyView;
}

export interface Rule {
  chain: string;
  text: string;
  /** The rule's comment as written: TAG, its role, and the hash of its text. */
  comment: string;
}

const egressChain = (bridge: string) => `egress-${bridge}`;
const hostChain = (bridge: string) => `host-${bridge}`;

/** The rules of every chain for `layout`, in order. */
export function rulesFor(layout: NftLayout): Rule[] {
  const { bridge } = layout;
  const egress = egressChain(bridge);
  const host = hostChain(bridge);
  // No IPv4 subnet known: every IPv4 packet from the bridge is forged, as far as we can tell.
  const source4 = layout[4].subnets.length ? `ip saddr != ${setOf(layout[4].subnets)} drop` : 'meta nfproto ipv4 drop';
  const source6 = `ip6 saddr != ${setOf([...layout[6].subnets, IPV6_LINK_LOCAL])} drop`;
  const ports = setOf(layout.ports.map((p) => `${p.protocol} . ${p.port}`));
  const dns = (family: 4 | 6) =>
    layout[family].dns.map(({ address, port }) => `${family === 4 ? 'ip' : 'ip6'} daddr ${address} meta l4proto { tcp, udp } th dport ${port} accept`);
  const rules: Array<[string, string, string]> = [
    ['forward', `iifname "${bridge}" jump ${egress}`, 'bridge'],
    ['input', `iifname "${bridge}" jump ${host}`, 'host'],
    [egress, source4, 'spoofed'],
    [egress, source6, 'spoofed'],
    [egress, 'ct state established,related accept', 'established'],
    [egress, `oifname "${bridge}" accept`, 'same-network'],
    ...(layout.ports.length ? ([[egress, `ip daddr @${SETS[4]} meta l4proto . th dport ${ports} accept`, 'allowed'], [egress, `ip6 daddr @${SETS[6]} meta l4proto . th dport ${ports} accept`, 'allowed']] as Array<[string, string, string]>) : []),
    [egress, 'counter drop', 'default-drop'],
    [host, 'icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept', 'neighbour-discovery'],
    [host, source4, 'spoofed'],
    [host, source6, 'spoofed'],
    [host, 'ct state established,related accept', 'established'],
    ...[...dns(4), ...dns(6)].map((text): [string, string, string] => [host, text, 'dns']),
    ...layout.hostPorts.map((p): [string, string, string] => [host, `meta l4proto ${p.protocol} th dport ${p.port} accept`, 'host-port']),
    [host, 'counter drop', 'host-drop'],
  ];
  return rules.map(([chain, text, role]) => ({ chain, text, comment: `${TAG} ${role} #${hash(chain, text)}` }));
}

/** The chains `layout` needs, base chains first. */
export function chainsFor(layout: NftLayout): string[] {
  return ['forward', 'input', egressChain(layout.bridge), hostChain(layout.bridge)];
}

/**
 * One transaction that makes the table read exactly as `layout` wants: the table, both sets
 * and every chain are added (a no-op for those that exist; set elements are never touched),
 * every chain of ours is flushed and written again, and chains of a bridge left behind are
 * deleted. Atomic: no packet sees the chains half written.
 */
export function renderTable(layout: NftLayout, existingChains: readonly string[] = []): string {
  const wanted = chainsFor(layout);
  const lines = [
    `add table ${FAMILY} ${TABLE}`,
    ...([4, 6] as const).map((f) => `add set ${FAMILY} ${TABLE} ${SETS[f]} { type ${f === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags timeout; counter; }`),
    `add chain ${FAMILY} ${TABLE} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${FAMILY} ${TABLE} input { type filter hook input priority filter; policy accept; }`,
    ...wanted.slice(2).map((chain) => `add chain ${FAMILY} ${TABLE} ${chain}`),
    ...wanted.map((chain) => `flush chain ${FAMILY} ${TABLE} ${chain}`),
    ...rulesFor(layout).map((r) => `add rule ${FAMILY} ${TABLE} ${r.chain} ${r.text} comment "${r.comment}"`),
    // A chain is deleted only once no rule jumps to it: the base chains were flushed above.
    ...existingChains.filter((chain) => !wanted.includes(chain)).flatMap((chain) => [`flush chain ${FAMILY} ${TABLE} ${chain}`, `delete chain ${FAMILY} ${TABLE} ${chain}`]),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Open or refresh `add` and close `remove`, in one transaction. An element is closed by
 * adding it (a no-op if it is there) and deleting it: nft 1.0.6 has no `destroy`, and a
 * plain delete fails the whole transaction when the kernel already let the element expire.
 */
export function renderElements(family: 4 | 6, add: readonly Entry[], remove: readonly Entry[], nowSeconds: number): string {
  const set = `${FAMILY} ${TABLE} ${SETS[family]}`;
  const lines: string[] = [];
  if (remove.length) {
    lines.push(`add element ${set} { ${remove.map((e) => `${e.address} timeout 1s`).join(', ')} }`);
    lines.push(`delete element ${set} { ${remove.map((e) => e.address).join(', ')} }`);
  }
  if (add.length) lines.push(`add element ${set} { ${add.map((e) => element(e, nowSeconds)).join(', ')} }`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Refreshed elements, deleted then added again in one transaction: for kernels that do not update a timeout in place. */
export function renderReplace(family: 4 | 6, refresh: readonly Entry[], nowSeconds: number): string {
  if (!refresh.length) return '';
  const set = `${FAMILY} ${TABLE} ${SETS[family]}`;
  return `delete element ${set} { ${refresh.map((e) => e.address).join(', ')} }\nadd element ${set} { ${refresh.map((e) => element(e, nowSeconds)).join(', ')} }\n`;
}

function element(entry: Entry, nowSeconds: number): string {
  const comment = entry.name && SAFE_NAME.test(entry.name) && entry.name.length <= MAX_COMMENT ? ` comment "${entry.name}"` : '';
  return `${entry.address} timeout ${elementTimeout(entry.expiresAt, nowSeconds)}s${comment}`;
}

/** Seconds left, at least one; an entry without expiry (adopted from a version without it) gets a day, as the longest TTL counted. */
export function elementTimeout(expiresAt: number | undefined, nowSeconds: number): number {
  if (expiresAt === undefined) return 86_400;
  return Math.max(1, Math.ceil(expiresAt - nowSeconds));
}

function setOf(items: readonly string[]): string {
  return items.length ? `{ ${items.join(', ')} }` : '{ }';
}

function hash(chain: string, text: string): string {
  return createHash('sha256').update(`${chain}\n${text}`).digest('hex').slice(0, 12);
}
