import { ApplyError } from '../../src/util/errors.js';
import type { IpsetRunner } from '../../src/firewall/ipset-runner.js';

/**
 * A fake ipset: applies restore lines to in-memory sets and lists them as `ipset list -o
 * save` does (timeouts as given, no clock), records every script, and can be made to fail.
 */
export function fakeIpset(initial: Record<string, { create: string; adds?: string[] }> = {}) {
  const sets = new Map(Object.entries(initial).map(([name, s]) => [name, { create: s.create, members: new Map((s.adds ?? []).map((a) => [a.split(' ')[0]!, a])) }]));
  const scripts: string[] = [];
  let failuresLeft = 0;
  const runner: IpsetRunner = {
    async save(set) {
      const s = sets.get(set);
      return s && [s.create, ...[...s.members.values()].map((m) => `add ${set} ${m}`)].join('\n');
    },
    async restore(script) {
      scripts.push(script);
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new ApplyError('ipset failed: Hash is full, cannot add more elements', { stderr: 'full' });
      }
      for (const line of script.split('\n').filter(Boolean)) {
        const [command, set, ...rest] = line.split(' ');
        if (command === 'create' && !sets.has(set!)) sets.set(set!, { create: line, members: new Map() });
        const members = sets.get(set!)?.members;
        if (command !== 'create' && !members) throw new ApplyError('ipset failed: The set with the given name does not exist', {});
        const element = rest.join(' ');
        if (command === 'add') members!.set(rest[0]!, element.includes(' packets ') ? element : element.replace(/( timeout \d+)/, '$1 packets 0 bytes 0'));
        if (command === 'del') members!.delete(rest[0]!);
        if (command === 'destroy') sets.delete(set!);
        if (command === 'swap') {
          // Names stay; what they hold (elements and attributes) trades places.
          const other = sets.get(rest[0]!);
          if (!other) throw new ApplyError('ipset failed: The set with the given name does not exist', {});
          const mine = sets.get(set!)!;
          sets.set(set!, { create: other.create.replace(` ${rest[0]} `, ` ${set} `), members: other.members });
          sets.set(rest[0]!, { create: mine.create.replace(` ${set} `, ` ${rest[0]} `), members: mine.members });
        }
      }
    },
    async destroy(set) {
      return sets.delete(set);
    },
    async names() {
      return [...sets.keys()];
    },
    close() {},
  };
  return { runner, sets, scripts, failNext: (n: number) => (failuresLeft = n) };
}
