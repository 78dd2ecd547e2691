/**
 * The firewall backends the hostile suites run against, and how each shows what it holds
 * in the kernel and what it drops. One entry per backend: every suite that loops over
 * BACKENDS picks a new one up.
 *
 *   iptables   per-address ACCEPT rules in DOCKER-USER, on a host shaped like Docker's iptables backend
 *   ipset      one set per family behind a rule in DOCKER-USER, on the same host
 *   nftables   our own table inet on-his-name, on a host shaped like Docker 29's nftables
 *              backend (table ip docker-bridges accepting what the bridge sends, no DOCKER-USER)
 */
import { execa } from 'execa';
import type { FirewallLabOptions } from './firewall-lab.js';
import { DROPS } from './hostile.js';
import type { Namespace } from './netns.js';

export type Family = 4 | 6;

export interface KernelHolds {
  /** Addresses open through our rules or set. */
  addresses: Set<string>;
  /** Kernel objects holding them: ACCEPT rules (one per address and port), or set elements. */
  entries: number;
  /**
   * Rules on the bridge's forwarding path where the backend keeps its own: DOCKER-USER's,
   * everyone's (iptables, where they grow with the addresses, and ipset), or every rule of
   * our table (nftables). What the packet path costs grows with it.
   */
  rules: number;
}

/** Counters of the rules that drop what the promise forbids; each probe reads one before and after. */
export interface Drops {
  /** Forwarded traffic to an address no answer opened. */
  egress(host: Namespace, family: Family): Promise<number>;
  /** A source address outside the network's subnets. */
  forged(host: Namespace, family: Family): Promise<number>;
  /** Anything a container sends the host itself but DNS and the ports opened on purpose. */
  host(host: Namespace, family: Family): Promise<number>;
}

export interface BackendUnderTest {
  name: string;
  /** Command-line arguments that select it. */
  args: readonly string[];
  /** What the host's firewall looks like in the lab this backend is tried in. */
  hostFirewall: NonNullable<FirewallLabOptions['hostFirewall']>;
  /** Where `rules` are counted, for a log line. */
  rulesWhere: string;
  /** True when it filters IPv6 whatever ip6tables has (our own nftables table); false when it needs ip6tables' DOCKER-USER. */
  ipv6Always: boolean;
  /** Kernel objects per open address, with `ports` TCP ports configured. */
  entriesPerAddress(ports: number): number;
  /** What it holds open in `host` for `family` now. */
  holds(host: Namespace, family: Family): Promise<KernelHolds>;
  drops: Drops;
  /** Its rules as the kernel lists them, for a failure report. */
  listing(host: Namespace): Promise<string>;
  /** Why it cannot run here (a missing tool), or undefined. */
  unavailable(): Promise<string | undefined>;
}

/**
 * `iptables -S DOCKER-USER`, read again while it repeats a line: iptables-nft's listing is
 * not atomic, and one taken while the chain changes may list the same rules twice (seen
 * here as the chain's tail three times over in a listing taken mid-flood).
 */
async function chain(host: Namespace, family: Family): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const listed = await host.exec(family === 6 ? 'ip6tables' : 'iptables', ['-S', 'DOCKER-USER']);
    const rules = listed.split('\n').filter((line) => line.startsWith('-A '));
    if (new Set(rules).size === rules.length || attempt >= 20) return listed;
  }
}
const hasCommand = async (command: string) => (await execa('sh', ['-c', `command -v ${command}`], { reject: false })).exitCode === 0;
/** Both families' filter tables, for a failure report; a family without iptables says so. */
const iptablesListing = async (host: Namespace) =>
  (
    await Promise.all(
      (['iptables', 'ip6tables'] as const).map(async (command) => `${command}:\n${await host.exec(command, ['-S']).catch((err: Error) => err.message)}`),
    )
  ).join('\n');

/** Our per-address ACCEPT rules in DOCKER-USER: `-d ADDRESS/32 … --comment "on-his-name …" -j ACCEPT`. */
const ACCEPT_RULE = /^-A DOCKER-USER -d (\S+?)\/(?:32|128) .*--comment "on-his-name[^"]*" -j ACCEPT$/;

const iptables: BackendUnderTest = {
  name: 'iptables',
  args: ['--backend', 'iptables'],
  hostFirewall: 'docker-user',
  rulesWhere: 'DOCKER-USER rules',
  ipv6Always: false,
  entriesPerAddress: (ports) => ports,
  async holds(host, family) {
    const listed = (await chain(host, family)).split('\n');
    const addresses = new Set<string>();
    let entries = 0;
    for (const line of listed) {
      const match = ACCEPT_RULE.exec(line);
      if (!match) continue;
      entries++;
      addresses.add(match[1]!);
    }
    return { addresses, entries, rules: listed.filter((line) => line.startsWith('-A ')).length };
  },
  drops: DROPS,
  listing: iptablesListing,
  unavailable: async () => undefined,
};

const ipset: BackendUnderTest = {
  name: 'ipset',
  args: ['--backend', 'ipset'],
  hostFirewall: 'docker-user',
  rulesWhere: 'DOCKER-USER rules',
  ipv6Always: false,
  entriesPerAddress: () => 1,
  async holds(host, family) {
    const set = family === 6 ? 'on-his-name-v6' : 'on-his-name-v4';
    const [listed, rules] = await Promise.all([
      execa('ip', ['netns', 'exec', host.name, 'ipset', 'list', '-o', 'save', set], { reject: false }),
      chain(host, family),
    ]);
    const addresses = new Set<string>();
    const chainRules = rules.split('\n').filter((line) => line.startsWith('-A ')).length;
    if (listed.exitCode !== 0) return { addresses, entries: 0, rules: chainRules };
    for (const line of String(listed.stdout).split('\n')) {
      const match = /^add \S+ (\S+)/.exec(line);
      if (match) addresses.add(match[1]!);
    }
    return { addresses, entries: addresses.size, rules: chainRules };
  },
  drops: DROPS,
  listing: async (host) => `${await iptablesListing(host)}\nipset:\n${await host.exec('ipset', ['list', '-t']).catch((err: Error) => err.message)}`,
  unavailable: async () => ((await hasCommand('ipset')) ? undefined : 'ipset not found: apt-get install ipset (CI installs it)'),
};

type Json = Record<string, unknown>;
interface NftRule {
  chain: string;
  comment: string;
  /** 4 or 6 when the rule matches one family's header only; undefined when it matches both. */
  family: Family | undefined;
  packets: number;
}

/** `nft -j list table inet on-his-name`, read: each rule's chain, comment, family and packet counter; each set's elements. Empty when there is no table. */
async function nftTable(host: Namespace): Promise<{ rules: NftRule[]; sets: Map<string, string[]> }> {
  const listed = await execa('ip', ['netns', 'exec', host.name, 'nft', '-j', 'list', 'table', 'inet', 'on-his-name'], { reject: false });
  const rules: NftRule[] = [];
  const sets = new Map<string, string[]>();
  if (listed.exitCode !== 0) return { rules, sets };
  for (const item of (JSON.parse(String(listed.stdout)) as { nftables: Json[] }).nftables) {
    const rule = item.rule as Json | undefined;
    if (rule) {
      const expr = JSON.stringify(rule.expr);
      const counter = /"counter":\{"packets":(\d+)/.exec(expr);
      const family = /"protocol":"ip6"/.test(expr) ? 6 : /"protocol":"ip"/.test(expr) ? 4 : undefined;
      rules.push({ chain: String(rule.chain), comment: typeof rule.comment === 'string' ? rule.comment : '', family, packets: counter ? Number(counter[1]) : 0 });
    }
    const set = item.set as Json | undefined;
    if (set && typeof set.name === 'string') {
      const elements = Array.isArray(set.elem) ? (set.elem as unknown[]) : [];
      sets.set(set.name, elements.map((e) => (typeof e === 'string' ? e : String(((e as Json).elem as Json).val))));
    }
  }
  return { rules, sets };
}

/**
 * Packets counted by our rules of role `role` (their comment, `on-his-name ROLE #HASH`) in
 * `family`. A rule that matches both families (the policies' and the host's final drop)
 * counts for both: a probe then reads the one counter before and after, with nothing else
 * on the bridge sending meanwhile.
 */
const nftCounter = (role: string) => async (host: Namespace, family: Family) =>
  (await nftTable(host)).rules
    .filter((r) => r.comment.startsWith(`on-his-name ${role} `) && (r.family === undefined || r.family === family))
    .reduce((sum, r) => sum + r.packets, 0);

const nftables: BackendUnderTest = {
  name: 'nftables',
  args: ['--backend', 'nftables'],
  hostFirewall: 'docker-bridges',
  rulesWhere: 'rules in table inet on-his-name',
  ipv6Always: true,
  entriesPerAddress: () => 1,
  async holds(host, family) {
    const table = await nftTable(host);
    const addresses = new Set(table.sets.get(`allow${family}`) ?? []);
    return { addresses, entries: addresses.size, rules: table.rules.length };
  },
  drops: { egress: nftCounter('default-drop'), forged: nftCounter('spoofed'), host: nftCounter('host-drop') },
  listing: async (host) => host.exec('nft', ['list', 'ruleset']).catch((err: Error) => err.message),
  unavailable: async () => ((await hasCommand('nft')) ? undefined : 'nft not found: apt-get install nftables'),
};

const ALL = [iptables, ipset, nftables];
/** ON_HIS_NAME_BACKENDS=nftables (or a comma-separated list) runs the suites for those alone. */
const chosen = process.env.ON_HIS_NAME_BACKENDS?.split(',').filter(Boolean);
/** Every backend, for suites where the backend decides the outcome (rules, sets, the source check, the host's chain). */
export const BACKENDS: readonly BackendUnderTest[] = chosen ? ALL.filter((b) => chosen.includes(b.name)) : ALL;
/** The default backend alone, for suites where the backend plays no part. */
export const DEFAULT_BACKEND: BackendUnderTest = iptables;
/** The nftables backend alone, for suites of its own (what another table's rules do to ours). */
export const NFTABLES: BackendUnderTest = nftables;
