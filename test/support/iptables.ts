import { ApplyError } from '../../src/util/errors.js';
import type { IptablesRunner } from '../../src/firewall/iptables.js';

/** A fake kernel: applies restore scripts to an in-memory DOCKER-USER listing, and can be made to fail. */
export function fakeIptables(initial: string[] = ['-N DOCKER-USER', '-A DOCKER-USER -j RETURN']) {
  const chain = [...initial];
  const scripts: string[] = [];
  /** The chain after every restore the kernel took: each state a packet could have met. */
  const states: string[][] = [];
  let failuresLeft = 0;
  /** Packet and byte counts by rule text (`-A …`), as the kernel would count them; see count(). */
  const counts = new Map<string, [number, number]>();
  const runner: IptablesRunner = {
    async list() {
      return [...chain];
    },
    async restore(script) {
      scripts.push(script);
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new ApplyError('iptables-restore failed: Another app is currently holding the xtables lock', { stderr: 'lock' });
      }
      // Like iptables-restore: all or nothing, and deleting a rule that is not there fails.
      const rules = chain.filter((l) => l.startsWith('-A '));
      for (const line of script.split('\n')) {
        const insert = /^-I (\S+) (\d+) (.*)$/.exec(line);
        const del = /^-D (\S+) (.*)$/.exec(line);
        if (insert) rules.splice(Number(insert[2]) - 1, 0, `-A ${insert[1]} ${insert[3]}`);
        if (del) {
          const at = rules.indexOf(`-A ${del[1]} ${del[2]}`);
          if (at < 0) throw new ApplyError(`iptables-restore failed: line: ${line}: Bad rule (does a matching rule exist in that chain?)`, { stderr: 'Bad rule' });
          rules.splice(at, 1);
        }
      }
      chain.splice(1, chain.length - 1, ...rules);
      states.push([...chain]);
    },
    async save() {
      const rules = chain.filter((l) => l.startsWith('-A ')).map((l) => `[${(counts.get(l) ?? [0, 0]).join(':')}] ${l}`);
      return ['*filter', ':DOCKER-USER - [0:0]', ...rules, 'COMMIT'].join('\n');
    },
  };
  /** Count packets against every rule now in the chain whose text contains `match`. */
  const count = (match: string, packets: number, bytes: number) => {
    for (const line of chain) if (line.includes(match)) counts.set(line, [packets, bytes]);
  };
  return { runner, chain, scripts, states, count, failNext: (n: number) => (failuresLeft = n) };
}
