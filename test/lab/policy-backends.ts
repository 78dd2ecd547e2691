/**
 * What each backend keeps in the kernel for a policy, read the way its own tools list it,
 * for the policy suites. One entry per backend:
 *
 *   iptables  default: per-address ACCEPT rules in DOCKER-USER, then "default-drop"
 *             NAME:    chain OHN-P-NAME (per-address ACCEPTs, then "policy-drop"),
 *                      clients routed to it from ON-HIS-NAME-CLIENTS
 *   ipset     the same chains, each matching a set: on-his-name-v4 / ohn-p-NAME-v4
 *   nftables  table inet on-his-name: set allow4 / p-NAME-4, chain policy-NAME ending in a
 *             counted drop, clients routed by the maps clients4 / ranges4
 *
 * IPv4 only: the policy suites' lab has no IPv6.
 */
import { execa } from 'execa';
import type { Namespace } from './netns.js';

export const DEFAULT_POLICY = 'default';

/** A container of the lab as the policy suites use it: its index in lab.containers, its address, its policy. */
export interface LabClient {
  index: number;
  address: string;
  policy: string;
}
/** The lab's first container, with no policy of its own, and the second, which the suites' policy files name 'web' by address. */
export const DEFAULT_CLIENT: LabClient = { index: 0, address: '192.0.2.10', policy: DEFAULT_POLICY };
export const WEB_CLIENT: LabClient = { index: 1, address: '192.0.2.11', policy: 'web' };

export interface PolicyBackend {
  name: 'iptables' | 'ipset' | 'nftables';
  /** Command-line arguments that select it. */
  args: readonly string[];
  /** What the host's firewall is before on-his-name: Docker's iptables backend, or Docker 29's nftables one. */
  hostFirewall: 'docker-user' | 'docker-bridges';
  /** The IPv4 addresses open for `policy`. */
  open(host: Namespace, policy: string): Promise<Set<string>>;
  /** Packets the drop at the end of `policy` has counted: what its clients sent that nothing opened. */
  drops(host: Namespace, policy: string): Promise<number>;
  /** Everything of `policy` in the kernel (its chain, its sets, the routes to it), one line each; empty once it is gone. */
  objects(host: Namespace, policy: string): Promise<string[]>;
  /** Everything of on-his-name in the kernel, one line each: empty after `on-his-name reset`. */
  everything(host: Namespace): Promise<string[]>;
  /** The excerpt the docs show: the listings a person would type to see the policies. */
  show(host: Namespace): Promise<string>;
}

const quiet = async (host: Namespace, command: string, args: readonly string[]) => {
  const result = await execa('ip', ['netns', 'exec', host.name, command, ...args], { reject: false });
  return result.exitCode === 0 ? String(result.stdout) : '';
};
const lines = (text: string) => text.split('\n').filter(Boolean);

const iptablesChain = (policy: string) => (policy === DEFAULT_POLICY ? 'DOCKER-USER' : `OHN-P-${policy}`);

/** Packets counted by the rules of `chain` whose comment starts with `comment` (`iptables-save -c`). */
async function ruleCounter(host: Namespace, chain: string, comment: string): Promise<number> {
  let packets = 0;
  for (const line of lines(await quiet(host, 'iptables-save', ['-c', '-t', 'filter']))) {
    const match = /^\[(\d+):\d+\] -A (\S+) (.*)$/.exec(line);
    if (match && match[2] === chain && match[3]!.includes(`--comment "${comment}`)) packets += Number(match[1]);
  }
  return packets;
}

const iptablesDrops = (host: Namespace, policy: string) =>
  policy === DEFAULT_POLICY ? ruleCounter(host, 'DOCKER-USER', 'on-his-name default-drop') : ruleCounter(host, iptablesChain(policy), 'on-his-name policy-drop');

/** Rules (with -S) and chains of `policy`'s: its chain and every rule that names it. */
async function iptablesObjects(host: Namespace, policy: string): Promise<string[]> {
  const chain = iptablesChain(policy);
  return lines(await quiet(host, 'iptables', ['-S'])).filter((line) => line.split(' ').includes(chain));
}

const ours = (line: string) => /on-his-name|ON-HIS-NAME|OHN-P-/.test(line);

const iptables: PolicyBackend = {
  name: 'iptables',
  args: ['--backend', 'iptables'],
  hostFirewall: 'docker-user',
  async open(host, policy) {
    const chain = iptablesChain(policy);
    const open = new Set<string>();
    for (const line of lines(await quiet(host, 'iptables', ['-S', chain]))) {
      const match = new RegExp(`^-A ${chain} -d (\\S+)/32 .*--comment "on-his-name[^"]*" -j ACCEPT$`).exec(line);
      if (match) open.add(match[1]!);
    }
    return open;
  },
  drops: iptablesDrops,
  objects: iptablesObjects,
  everything: async (host) => lines(await quiet(host, 'iptables', ['-S'])).filter(ours),
  async show(host) {
    const listed = lines(await quiet(host, 'iptables', ['-S']));
    const chains = ['DOCKER-USER', 'ON-HIS-NAME-CLIENTS', ...listed.filter((l) => l.startsWith('-N OHN-P-')).map((l) => l.slice(3))];
    return chains.map((chain) => `$ iptables -S ${chain}\n${listed.filter((l) => l.split(' ')[1] === chain).join('\n')}`).join('\n');
  },
};

const ipsetSet = (policy: string) => (policy === DEFAULT_POLICY ? 'on-his-name-v4' : `ohn-p-${policy}-v4`);
const ipsetNames = async (host: Namespace) => lines(await quiet(host, 'ipset', ['list', '-n']));

const ipset: PolicyBackend = {
  name: 'ipset',
  args: ['--backend', 'ipset'],
  hostFirewall: 'docker-user',
  async open(host, policy) {
    const open = new Set<string>();
    for (const line of lines(await quiet(host, 'ipset', ['list', '-o', 'save', ipsetSet(policy)]))) {
      const match = /^add \S+ (\S+)/.exec(line);
      if (match) open.add(match[1]!);
    }
    return open;
  },
  drops: iptablesDrops,
  async objects(host, policy) {
    const sets = policy === DEFAULT_POLICY ? [] : (await ipsetNames(host)).filter((name) => name.startsWith(`ohn-p-${policy}-`)).map((name) => `ipset ${name}`);
    return [...(await iptablesObjects(host, policy)), ...sets];
  },
  async everything(host) {
    const sets = (await ipsetNames(host)).filter((name) => /^(on-his-name|ohn-)/.test(name)).map((name) => `ipset ${name}`);
    return [...(await iptables.everything(host)), ...sets];
  },
  async show(host) {
    return `${await iptables.show(host)}\n$ ipset list -n\n${(await ipsetNames(host)).join('\n')}`;
  },
};

/** One nft JSON object of `nft -j list …`: { set: … }, { rule: … }, { map: … }, { element: … }. */
type NftObject = Record<string, Record<string, unknown>>;
const nftJson = async (host: Namespace, args: readonly string[]): Promise<NftObject[]> => {
  const text = await quiet(host, 'nft', ['-j', 'list', ...args]);
  return text ? (JSON.parse(text) as { nftables: NftObject[] }).nftables : [];
};
const nftSet = (policy: string) => (policy === DEFAULT_POLICY ? 'allow4' : `p-${policy}-4`);
const nftChain = (policy: string) => `policy-${policy}`;

const nftables: PolicyBackend = {
  name: 'nftables',
  args: ['--backend', 'nftables'],
  hostFirewall: 'docker-bridges',
  async open(host, policy) {
    const open = new Set<string>();
    for (const object of await nftJson(host, ['set', 'inet', 'on-his-name', nftSet(policy)])) {
      for (const element of (object.set?.elem as unknown[] | undefined) ?? []) {
        // A plain address, or { elem: { val: ADDRESS, timeout, expires, counter, comment } }.
        const value = typeof element === 'string' ? element : (element as { elem?: { val?: unknown } }).elem?.val;
        if (typeof value === 'string') open.add(value);
      }
    }
    return open;
  },
  async drops(host, policy) {
    let packets = 0;
    for (const object of await nftJson(host, ['chain', 'inet', 'on-his-name', nftChain(policy)])) {
      const expr = (object.rule?.expr as Array<Record<string, { packets?: number }>> | undefined) ?? [];
      if (expr.some((e) => 'drop' in e)) packets += expr.find((e) => 'counter' in e)?.counter?.packets ?? 0;
    }
    return packets;
  },
  async objects(host, policy) {
    const table = lines(await quiet(host, 'nft', ['list', 'table', 'inet', 'on-his-name']));
    const names = [`p-${policy}-4`, `p-${policy}-6`, nftChain(policy)];
    return table.map((line) => line.trim()).filter((line) => names.some((name) => new RegExp(`(^|[\\s@])${name}([\\s,;]|$)`).test(line)));
  },
  async everything(host) {
    return lines(await quiet(host, 'nft', ['list', 'table', 'inet', 'on-his-name']));
  },
  async show(host) {
    return `$ nft list table inet on-his-name\n${await quiet(host, 'nft', ['list', 'table', 'inet', 'on-his-name'])}`;
  },
};

export const POLICY_BACKENDS: readonly PolicyBackend[] = [iptables, ipset, nftables];

/** Why `backend` cannot run here (a missing tool), or undefined. */
export async function unavailable(backend: PolicyBackend): Promise<string | undefined> {
  const tool = backend.name === 'nftables' ? 'nft' : backend.name;
  const found = (await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode === 0;
  return found ? undefined : `${tool} not found: apt-get install ${backend.name === 'nftables' ? 'nftables' : tool}`;
}
