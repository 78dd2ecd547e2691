/**
 * The firewall backends the hostile suites run against, and how each shows what it holds
 * in the kernel. One entry per backend: adding one (nftables) is one more entry here, and
 * every suite that loops over BACKENDS picks it up.
 */
import { execa } from 'execa';
import type { Namespace } from './netns.js';

export type Family = 4 | 6;

export interface KernelHolds {
  /** Addresses open through our rules or set. */
  addresses: Set<string>;
  /** Kernel objects holding them: ACCEPT rules (one per address and port), or set elements. */
  entries: number;
  /** Rules in the family's DOCKER-USER, everyone's (read with the entries where the backend keeps them there). */
  chainRules: number;
}

export interface BackendUnderTest {
  name: string;
  /** Command-line arguments that select it. */
  args: readonly string[];
  /** Kernel objects per open address, with `ports` TCP ports configured. */
  entriesPerAddress(ports: number): number;
  /** What it holds open in `host` for `family` now. */
  holds(host: Namespace, family: Family): Promise<KernelHolds>;
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

/** Our per-address ACCEPT rules in DOCKER-USER: `-d ADDRESS/32 … --comment "on-his-name …" -j ACCEPT`. */
const ACCEPT_RULE = /^-A DOCKER-USER -d (\S+?)\/(?:32|128) .*--comment "on-his-name[^"]*" -j ACCEPT$/;

const iptables: BackendUnderTest = {
  name: 'iptables',
  args: ['--backend', 'iptables'],
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
    return { addresses, entries, chainRules: listed.filter((line) => line.startsWith('-A ')).length };
  },
  unavailable: async () => undefined,
};

const ipset: BackendUnderTest = {
  name: 'ipset',
  args: ['--backend', 'ipset'],
  entriesPerAddress: () => 1,
  async holds(host, family) {
    const set = family === 6 ? 'on-his-name-v6' : 'on-his-name-v4';
    const [listed, rules] = await Promise.all([
      execa('ip', ['netns', 'exec', host.name, 'ipset', 'list', '-o', 'save', set], { reject: false }),
      chain(host, family),
    ]);
    const addresses = new Set<string>();
    const chainRules = rules.split('\n').filter((line) => line.startsWith('-A ')).length;
    if (listed.exitCode !== 0) return { addresses, entries: 0, chainRules };
    for (const line of String(listed.stdout).split('\n')) {
      const match = /^add \S+ (\S+)/.exec(line);
      if (match) addresses.add(match[1]!);
    }
    return { addresses, entries: addresses.size, chainRules };
  },
  unavailable: async () => ((await hasCommand('ipset')) ? undefined : 'ipset not found: apt-get install ipset (CI installs it)'),
};

/** Every backend, for suites where the backend decides the outcome (rules, sets, the source check, the host's chain). */
export const BACKENDS: readonly BackendUnderTest[] = [iptables, ipset];
/** The default backend alone, for suites where the backend plays no part. */
export const DEFAULT_BACKEND: BackendUnderTest = iptables;
