import { ApplyError } from '../../src/util/errors.js';
import type { IptablesRunner } from '../../src/firewall/iptables.js';

const BUILTIN = ['INPUT', 'FORWARD', 'OUTPUT'] as const;

/**
 * A fake kernel: the filter table in memory (the built-in chains, DOCKER-USER as Docker
 * makes it and FORWARD jumping to it, and whatever chains restores create), taking
 * restore scripts all or nothing as iptables-restore does, and able to be made to fail.
 * `chain` is DOCKER-USER's listing (`-N DOCKER-USER` then its rules), live: a test may
 * splice it to play someone else changing the kernel.
 */
export function fakeIptables(initial: string[] = ['-N DOCKER-USER', '-A DOCKER-USER -j RETURN'], options: { forwardJump?: boolean } = {}) {
  const chain = [...initial];
  /** Every other chain: name → its rules as `-A NAME …` lines. */
  const others = new Map<string, string[]>(BUILTIN.map((name) => [name, [] as string[]]));
  if (options.forwardJump !== false) others.get('FORWARD')!.push('-A FORWARD -j DOCKER-USER');
  // Chains the initial rules jump to exist (empty), as they would in a kernel that holds those rules.
  for (const line of initial) {
    const target = /-j (ON-HIS-NAME-\S+)/.exec(line)?.[1];
    if (target && !others.has(target)) others.set(target, []);
  }
  const scripts: string[] = [];
  /** DOCKER-USER after every restore the kernel took: each state a packet could have met. */
  const states: string[][] = [];
  let failuresLeft = 0;
  /** Packet and byte counts by rule text (`-A …`), as the kernel would count them; see count(). */
  const counts = new Map<string, [number, number]>();
  const tables = () => new Map<string, string[]>([['DOCKER-USER', chain.filter((l) => l.startsWith('-A '))], ...[...others].map(([k, v]) => [k, [...v]] as [string, string[]])]);
  const runner: IptablesRunner = {
    async list() {
      const t = tables();
      const user = [...t.keys()].filter((name) => !(BUILTIN as readonly string[]).includes(name)).sort();
      return [...BUILTIN.map((name) => `-P ${name} ACCEPT`), ...user.map((name) => `-N ${name}`), ...[...t.values()].flat()];
    },
    async restore(script) {
      scripts.push(script);
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new ApplyError('iptables-restore failed: Another app is currently holding the xtables lock', { stderr: 'lock' });
      }
      // Like iptables-restore: all or nothing.
      const t = tables();
      const fail = (line: string, why: string) => {
        throw new ApplyError(`iptables-restore failed: line: ${line}: ${why}`, { stderr: why });
      };
      const rulesOf = (name: string, line: string) => t.get(name) ?? fail(line, `No chain/target/match by that name (${name})`);
      for (const line of script.split('\n')) {
        let m: RegExpExecArray | null;
        if ((m = /^:(\S+) /.exec(line))) t.set(m[1]!, []);
        else if ((m = /^-N (\S+)$/.exec(line))) {
          if (t.has(m[1]!)) fail(line, 'Chain already exists');
          t.set(m[1]!, []);
        } else if ((m = /^-F (\S+)$/.exec(line))) rulesOf(m[1]!, line).splice(0);
        else if ((m = /^-X (\S+)$/.exec(line))) {
          const referenced = [...t.values()].flat().some((l) => l.endsWith(`-j ${m![1]}`));
          if (referenced || rulesOf(m[1]!, line).length > 0) fail(line, 'Directory not empty or still referenced');
          t.delete(m[1]!);
        } else if ((m = /^-A (\S+) (.*)$/.exec(line))) rulesOf(m[1]!, line).push(`-A ${m[1]} ${m[2]}`);
        else if ((m = /^-I (\S+) (\d+) (.*)$/.exec(line))) {
          const rules = rulesOf(m[1]!, line);
          if (Number(m[2]) > rules.length + 1) fail(line, 'Index of insertion too big');
          rules.splice(Number(m[2]) - 1, 0, `-A ${m[1]} ${m[3]}`);
        } else if ((m = /^-D (\S+) (\d+)$/.exec(line))) {
          const rules = rulesOf(m[1]!, line);
          if (Number(m[2]) > rules.length) fail(line, 'Index of deletion too big');
          rules.splice(Number(m[2]) - 1, 1);
        } else if ((m = /^-D (\S+) (.*)$/.exec(line))) {
          const rules = rulesOf(m[1]!, line);
          const at = rules.indexOf(`-A ${m[1]} ${m[2]}`);
          if (at < 0) fail(line, 'Bad rule (does a matching rule exist in that chain?)');
          rules.splice(at, 1);
        }
      }
      // Rules may only jump (or go) to chains that exist.
      for (const line of [...t.values()].flat()) {
        const target = /-[jg] (\S+)/.exec(line)?.[1];
        if (target && /^[A-Za-z][A-Za-z0-9_-]*$/.test(target) && !['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'SET', 'MARK'].includes(target) && !t.has(target)) fail(line, `Couldn't load target \`${target}'`);
      }
      chain.splice(1, chain.length - 1, ...t.get('DOCKER-USER')!);
      others.clear();
      for (const [name, rules] of t) if (name !== 'DOCKER-USER') others.set(name, rules);
      states.push([...chain]);
    },
    async save() {
      const rules = [...tables().values()].flat().map((l) => `[${(counts.get(l) ?? [0, 0]).join(':')}] ${l}`);
      return ['*filter', ':DOCKER-USER - [0:0]', ...rules, 'COMMIT'].join('\n');
    },
  };
  /** Count packets against every rule now in the chain whose text contains `match`. */
  const count = (match: string, packets: number, bytes: number) => {
    for (const line of chain) if (line.includes(match)) counts.set(line, [packets, bytes]);
  };
  /** The rules of any chain, as `-A NAME …` lines. */
  const rules = (name: string) => (name === 'DOCKER-USER' ? chain.filter((l) => l.startsWith('-A ')) : [...(others.get(name) ?? [])]);
  return { runner, chain, scripts, states, count, rules, others, failNext: (n: number) => (failuresLeft = n) };
}
