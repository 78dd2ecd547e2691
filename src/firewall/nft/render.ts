/**
 * The nftables backend's table, as `nft -f` text, and what to read back from `nft -j list
 * table`. Pure; no I/O.
 *
 * Everything lives in one table of our own, so nothing of anyone else's is ever touched,
 * and a drop in any base chain on a hook is final for the packet whatever other tables
 * (Docker's iptables or nftables backend, a host firewall) accept:
 *
 *   table inet on-his-name
 *     set allow4 / allow6        the default policy's open addresses: per-element timeout,
 *                                counter, and the name as comment; p-NAME-4 / p-NAME-6 per policy
 *     map clients4 / clients6    a container's address → jump policy-NAME (its labels)
 *     map ranges4 / ranges6      a range of the policy file → jump policy-NAME (interval)
 *     chain forward  (hook forward, priority filter)   iifname BR jump egress-BR
 *     chain input    (hook input, priority filter)     iifname BR jump host-BR
 *     chain egress-BR   source outside the network → drop; established → accept; to the
 *                       same bridge → accept; the client's policy by its address, from
 *                       the maps; everyone else → jump policy-default
 *     chain policy-NAME to an address of the policy's set, on its protocols and ports →
 *                       accept; the rest is recorded in blocked4 / blocked6 (client .
 *                       destination . protocol . port, a counter and a timeout: the blocked
 *                       view) → counter drop, or in audit mode counter accept (policy-refused
 *                       opens nothing)
 *     set blocked4 / blocked6   what was about to be blocked, drained by the daemon
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
import { BLOCKED_SET_SIZE, BLOCKED_TIMEOUT_SECONDS } from '../blocked.js';
import { IPV6_LINK_LOCAL, TAG, type DnsTarget, type PortSpec } from '../rules.js';

export const TABLE = 'on-his-name';
export const FAMILY = 'inet';
export const DEFAULT_POLICY = 'default';
/** The policy of a container whose labels were refused: it opens nothing. */
export const REFUSING_POLICY = 'refused';
export const CLIENT_MAPS = { 4: 'clients4', 6: 'clients6' } as const;
export const RANGE_MAPS = { 4: 'ranges4', 6: 'ranges6' } as const;

/** The set of a policy's open addresses of one family. */
export function setName(policy: string, family: 4 | 6): string {
  return policy === DEFAULT_POLICY ? `allow${family}` : `p-${policy}-${family}`;
}

export function policyChain(policy: string): string {
  return `policy-${policy}`;
}
/** nft refuses longer comments. */
const MAX_COMMENT = 128;
const SAFE_NAME = /^[a-z0-9._-]+$/;

export interface FamilyView {
  subnets: readonly string[];
  dns: readonly DnsTarget[];
}

/** What the table filters: one bridge, both families, the default policy's ports and the others', and the host's. */
export interface NftLayout {
  bridge: string;
  /** The default policy's ports. */
  ports: readonly PortSpec[];
  hostPorts: readonly PortSpec[];
  4: FamilyView;
  6: FamilyView;
  /** Every policy but the default, with its ports (the refusing one opens none) and its mode. */
  policies?: ReadonlyArray<{ name: string; ports: readonly PortSpec[]; audit?: boolean }>;
  /** The default policy's audit mode. */
  audit?: boolean;
  /** Record what is about to be blocked (the blocked view). */
  record?: boolean;
}

export const BLOCKED_NFT_SETS = { 4: 'blocked4', 6: 'blocked6' } as const;


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
  // Counted, as every drop here: forged packets are a container misbehaving, worth seeing.
  const source4 = layout[4].subnets.length ? `ip saddr != ${setOf(layout[4].subnets)} counter drop` : 'meta nfproto ipv4 counter drop';
  const source6 = `ip6 saddr != ${setOf([...layout[6].subnets, IPV6_LINK_LOCAL])} counter drop`;
  const dns = (family: 4 | 6) =>
    layout[family].dns.map(({ address, port }) => `${family === 4 ? 'ip' : 'ip6'} daddr ${address} meta l4proto { tcp, udp } th dport ${port} accept`);
  const policies = [{ name: DEFAULT_POLICY, ports: layout.ports, audit: layout.audit }, ...(layout.policies ?? [])];
  const record = (chain: string): Array<[string, string, string]> =>
    layout.record
      ? [
          [chain, `meta l4proto { tcp, udp } update @${BLOCKED_NFT_SETS[4]} { ip saddr . ip daddr . meta l4proto . th dport }`, 'record'],
          [chain, `meta l4proto { tcp, udp } update @${BLOCKED_NFT_SETS[6]} { ip6 saddr . ip6 daddr . meta l4proto . th dport }`, 'record'],
        ]
      : [];
  const rules: Array<[string, string, string]> = [
    ['forward', `iifname "${bridge}" jump ${egress}`, 'bridge'],
    ['input', `iifname "${bridge}" jump ${host}`, 'host'],
    [egress, source4, 'spoofed'],
    [egress, source6, 'spoofed'],
    [egress, 'ct state established,related accept', 'established'],
    [egress, `oifname "${bridge}" accept`, 'same-network'],
    [egress, `ip saddr vmap @${CLIENT_MAPS[4]}`, 'client-policy'],
    [egress, `ip6 saddr vmap @${CLIENT_MAPS[6]}`, 'client-policy'],
    [egress, `ip saddr vmap @${RANGE_MAPS[4]}`, 'range-policy'],
    [egress, `ip6 saddr vmap @${RANGE_MAPS[6]}`, 'range-policy'],
    [egress, `jump ${policyChain(DEFAULT_POLICY)}`, 'default-policy'],
    ...policies.flatMap(({ name, ports, audit }): Array<[string, string, string]> => {
      const chain = policyChain(name);
      const list = setOf(ports.map((p) => `${p.protocol} . ${p.port}`));
      return [
        ...(ports.length
          ? ([
              [chain, `ip daddr @${setName(name, 4)} meta l4proto . th dport ${list} accept`, 'allowed'],
              [chain, `ip6 daddr @${setName(name, 6)} meta l4proto . th dport ${list} accept`, 'allowed'],
            ] as Array<[string, string, string]>)
          : []),
        ...record(chain),
        [chain, audit ? 'counter accept' : 'counter drop', `${name === DEFAULT_POLICY ? 'default' : 'policy'}-${audit ? 'audit' : 'drop'}`],
      ];
    }),
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
  return ['forward', 'input', egressChain(layout.bridge), hostChain(layout.bridge), ...policyNames(layout).map(policyChain)];
}

/** Every policy the table holds a chain and sets for, the default first. */
export function policyNames(layout: NftLayout): string[] {
  return [DEFAULT_POLICY, ...(layout.policies ?? []).map((p) => p.name)];
}

/** The sets and maps `layout` needs, as `add set` / `add map` (a no-op for one that exists). */
function setsFor(layout: NftLayout): string[] {
  const table = `${FAMILY} ${TABLE}`;
  const type = (family: 4 | 6) => (family === 4 ? 'ipv4_addr' : 'ipv6_addr');
  return [
    ...policyNames(layout).flatMap((policy) =>
      ([4, 6] as const).map((f) => `add set ${table} ${setName(policy, f)} { type ${type(f)}; flags timeout; counter; }`),
    ),
    ...([4, 6] as const).flatMap((f) => [
      `add map ${table} ${CLIENT_MAPS[f]} { type ${type(f)} : verdict; }`,
      `add map ${table} ${RANGE_MAPS[f]} { type ${type(f)} : verdict; flags interval; }`,
    ]),
    ...(layout.record
      ? ([4, 6] as const).map(
          (f) =>
            `add set ${table} ${BLOCKED_NFT_SETS[f]} { type ${type(f)} . ${type(f)} . inet_proto . inet_service; flags dynamic, timeout; timeout ${BLOCKED_TIMEOUT_SECONDS}s; size ${BLOCKED_SET_SIZE}; counter; }`,
        )
      : []),
  ];
}

/**
 * One transaction that makes the table read exactly as `layout` wants: the table, both sets
 * and every chain are added (a no-op for those that exist; set elements are never touched),
 * every chain of ours is flushed and written again, and chains of a bridge left behind are
 * deleted. Atomic: no packet sees the chains half written.
 */
export function renderTable(
  layout: NftLayout,
  existing: { chains?: readonly string[]; sets?: readonly string[]; routes?: ReadonlyArray<{ map: string; key: string; target: string }> } = {},
): string {
  const wanted = chainsFor(layout);
  const table = `${FAMILY} ${TABLE}`;
  const gone = (existing.chains ?? []).filter((chain) => !wanted.includes(chain));
  const wantedSets = new Set(policyNames(layout).flatMap((p) => [setName(p, 4), setName(p, 6)]));
  const goneSets = (existing.sets ?? []).filter((set) => /^(allow[46]|p-.+-[46])$/.test(set) && !wantedSets.has(set));
  const goneRoutes = new Map<string, string[]>();
  for (const { map, key, target } of existing.routes ?? []) if (gone.includes(target)) goneRoutes.set(map, [...(goneRoutes.get(map) ?? []), key]);
  const lines = [
    `add table ${table}`,
    ...setsFor(layout),
    `add chain ${table} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${table} input { type filter hook input priority filter; policy accept; }`,
    ...wanted.slice(2).map((chain) => `add chain ${table} ${chain}`),
    ...wanted.map((chain) => `flush chain ${table} ${chain}`),
    // A chain a map still routes a client to cannot go, and the transaction fails whole: the
    // daemon routes a policy's clients elsewhere (renderRoutes) before it drops the policy,
    // and a previous run's routes to a policy no longer there (met at start, before any
    // routes are written) are deleted with it: those clients have no such policy any more.
    ...gone.map((chain) => `flush chain ${table} ${chain}`),
    ...rulesFor(layout).map((r) => `add rule ${table} ${r.chain} ${r.text} comment "${r.comment}"`),
    ...[...goneRoutes].map(([map, keys]) => `delete element ${table} ${map} { ${keys.join(', ')} }`),
    ...gone.map((chain) => `delete chain ${table} ${chain}`),
    ...goneSets.map((set) => `delete set ${table} ${set}`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Every client with a policy of its own, in its map, in one transaction: the maps are
 * emptied and filled again, so a client whose container left, or whose policy changed,
 * is routed as wanted from this transaction on. `routes` name chains that exist.
 */
export function renderRoutes(routes: ReadonlyArray<{ client: string; policy: string }>): string {
  const table = `${FAMILY} ${TABLE}`;
  const lines = ([4, 6] as const).flatMap((f) => [`flush map ${table} ${CLIENT_MAPS[f]}`, `flush map ${table} ${RANGE_MAPS[f]}`]);
  for (const f of [4, 6] as const) {
    const ofFamily = routes.filter((r) => (r.client.includes(':') ? 6 : 4) === f);
    const exact = ofFamily.filter((r) => !r.client.includes('/'));
    const ranges = ofFamily.filter((r) => r.client.includes('/'));
    const element = (r: { client: string; policy: string }) => `${r.client} : jump ${policyChain(r.policy)}`;
    if (exact.length) lines.push(`add element ${table} ${CLIENT_MAPS[f]} { ${exact.map(element).join(', ')} }`);
    if (ranges.length) lines.push(`add element ${table} ${RANGE_MAPS[f]} { ${ranges.map(element).join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Open or refresh `add` and close `remove`, in one transaction. An element is closed by
 * adding it (a no-op if it is there) and deleting it: nft 1.0.6 has no `destroy`, and a
 * plain delete fails the whole transaction when the kernel already let the element expire.
 */
export function renderElements(family: 4 | 6, add: readonly Entry[], remove: readonly Entry[], nowSeconds: number, policy = DEFAULT_POLICY): string {
  const set = `${FAMILY} ${TABLE} ${setName(policy, family)}`;
  const lines: string[] = [];
  if (remove.length) {
    lines.push(`add element ${set} { ${remove.map((e) => `${e.address} timeout 1s`).join(', ')} }`);
    lines.push(`delete element ${set} { ${remove.map((e) => e.address).join(', ')} }`);
  }
  if (add.length) lines.push(`add element ${set} { ${add.map((e) => element(e, nowSeconds)).join(', ')} }`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Refreshed elements, deleted then added again in one transaction: for kernels that do not update a timeout in place. */
export function renderReplace(family: 4 | 6, refresh: readonly Entry[], nowSeconds: number, policy = DEFAULT_POLICY): string {
  if (!refresh.length) return '';
  const set = `${FAMILY} ${TABLE} ${setName(policy, family)}`;
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
