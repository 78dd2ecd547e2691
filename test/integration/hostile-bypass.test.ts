/**
 * When the rules cannot hold (issue item 8), on-his-name must say so rather than look as if
 * they did; and a mistyped command must not become a pattern (item 9). In the lab:
 * - `on-his-name rset` (reset, mistyped) is refused in one line and installs nothing;
 * - FORWARD without its jump to DOCKER-USER: every rule there is ignored, so it refuses to
 *   start, naming the fix;
 * - someone's `iptables -I DOCKER-USER 1 -j ACCEPT` above our block: at start it refuses,
 *   naming the rule; while it runs, the next reconcile logs an error line and /healthz
 *   answers 503 with the reason.
 * The backend plays no part there: the default one runs.
 *
 * The nftables backend's table is met whatever other tables say (a drop in any base chain
 * is final for the packet, an accept only ends that chain), so the same moves cannot get
 * past it; what can is someone changing the table itself. On a host shaped like Docker
 * 29's nftables backend, and on one with DOCKER-USER:
 * - an accept for the bridge in another table (an earlier priority, Docker's own chain,
 *   iptables' FORWARD or DOCKER-USER) lets nothing past our drop, and /healthz stays 200;
 *   a drop there is final even for an address we opened (the host can only narrow us);
 * - our table deleted or flushed, a chain of it flushed or deleted, an accept put in it, a
 *   set flushed: each is repaired at the next reconcile (here every second unless
 *   ON_HIS_NAME_RECONCILE says otherwise), with a
 *   warning. The suite measures how long it stood open, how many of a container's
 *   connections to a closed address got through meanwhile, and whether they outlived the
 *   repair;
 * - the daemon stopped, gently or not: egress stays closed, and what it opened stays open
 *   until it expires; no nft process is left behind.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BACKEND, NFTABLES } from '../lab/backends.js';
import { run } from '../lab/exec.js';
import { startFakeDns } from '../lab/fake-dns.js';
import { DEFAULT_RECORDS, GATEWAY } from '../lab/firewall-lab.js';
import { SCRIPTS, probe } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { pollUntil, startReady } from '../lab/ns-process.js';
import { CLI } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const ADMIN_PORT = 9473;
const ACCEPT_ALL = ['DOCKER-USER', '1', '-j', 'ACCEPT'];

describe.skipIf(!canUseNamespaces())(`on-his-name when its rules cannot hold, and a mistyped command${skipNote()}`, () => {
  let hostile: HostileLab;
  const backend = DEFAULT_BACKEND;
  /** The whole filter table, counters left out: what "installs nothing" compares. */
  const table = async () => (await hostile.lab.host.exec('iptables-save', ['-t', 'filter'])).split('\n').filter((line) => !line.startsWith('#'));
  const refused = async (args: readonly string[]) => {
    const outcome = await hostile.startOrExit(args);
    if ('running' in outcome) {
      const rules = await hostile.lab.rules();
      await hostile.stopDaemon();
      expect.fail(`it started and runs as if its rules held; DOCKER-USER:\n${rules.join('\n')}`);
    }
    return outcome;
  };

  beforeAll(async () => {
    hostile = await createHostileLab();
  }, 60_000);

  printOnFailure(async () => firewallReport(await hostile.lab.rules(), hostile.daemon?.output()));

  afterAll(async () => {
    await hostile?.close();
  });

  it('"rset" is not a pattern: refused with a "did you mean reset" line, nothing installed', async () => {
    const before = await table();
    const bare = await execa('ip', ['netns', 'exec', hostile.lab.host.name, process.execPath, CLI, 'rset'], { reject: false, timeout: 20_000 });
    expect(bare.exitCode).toBe(2);
    expect(String(bare.stderr).trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: "rset" is not a command \(did you mean "reset"\?\)/)]);
    const outcome = await refused([...backend.args, 'rset']);
    expect(outcome.exitCode).toBe(2);
    expect(outcome.stderr).toMatch(/did you mean "reset"/);
    expect(await table()).toEqual(before);
  });

  it('refuses to start when FORWARD does not jump to DOCKER-USER, and says how to restore the jump', async () => {
    await hostile.lab.iptables('-D', 'FORWARD', '-j', 'DOCKER-USER');
    try {
      const outcome = await refused([...backend.args, 'allowed.test.']);
      expect(outcome.exitCode).toBe(2);
      expect(outcome.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: FORWARD does not jump to DOCKER-USER .*"iptables -I FORWARD -j DOCKER-USER"/)]);
    } finally {
      await hostile.lab.iptables('-I', 'FORWARD', '-j', 'DOCKER-USER');
    }
  });

  it('an ACCEPT put above its block while it runs is an error line and a 503 from /healthz at the next reconcile', async () => {
    const daemon = await hostile.start([...backend.args, '--reconcile-interval', '1', '--admin-listen', String(ADMIN_PORT), 'allowed.test.']);
    expect((await hostile.admin(ADMIN_PORT, '/healthz')).status).toBe(200);
    await hostile.lab.iptables('-I', ...ACCEPT_ALL);
    try {
      const line = await daemon.waitFor((l) => l.level === 50 && l.msg.startsWith(`egress from ${hostile.lab.bridge} is NOT filtered: `), 10_000);
      expect(line.msg).toContain('"-A DOCKER-USER -j ACCEPT"');
      const health = await hostile.admin(ADMIN_PORT, '/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toContain('-A DOCKER-USER -j ACCEPT');
    } finally {
      await hostile.stopDaemon();
    }
  });

  it('the same ACCEPT present at start: refuses, naming the rule', async () => {
    try {
      const outcome = await refused([...backend.args, 'allowed.test.']);
      expect(outcome.exitCode).toBe(2);
      expect(outcome.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: a rule above on-his-name's block in DOCKER-USER lets traffic from ohnbr0 past on-his-name: "-A DOCKER-USER -j ACCEPT"; remove it or narrow it/)]);
    } finally {
      await hostile.lab.iptables('-D', ...ACCEPT_ALL.filter((word) => word !== '1'));
    }
  });
});

const NFT_ADMIN_PORT = 9474;
const ALLOWED = '198.51.100.10';
const DENIED = '203.0.113.10';
/** The daemon's reconcile interval here; ON_HIS_NAME_RECONCILE=15 measures the window at the default. */
const RECONCILE_SECONDS = Number(process.env.ON_HIS_NAME_RECONCILE ?? 1);
const TEST_MS = 20_000 + 3_000 * RECONCILE_SECONDS;
/** How long a connection that got through is held before it is used: past the repair. */
const HOLD_MS = RECONCILE_SECONDS * 1000 + 2_000;

/** Ways to damage our table while the daemon runs: what, the nft command, and the warning it must log. */
const DAMAGE = [
  ['the table deleted', 'delete table inet on-his-name', 'our base rules were missing'],
  ['the table flushed (every chain and set emptied)', 'flush table inet on-his-name', 'our base rules were missing'],
  ['the egress chain flushed', 'flush chain inet on-his-name egress-ohnbr0', 'our base rules were missing'],
  ['the forward base chain deleted', 'delete chain inet on-his-name forward', 'our base rules were missing'],
  ['the input base chain deleted', 'delete chain inet on-his-name input', 'our base rules were missing'],
  ['an accept put first in the egress chain', 'insert rule inet on-his-name egress-ohnbr0 accept', 'our base rules were missing'],
  ['the allow4 set flushed (closed, not open)', 'flush set inet on-his-name allow4', 'rules for open addresses were missing'],
] as const;

describe.skipIf(!canUseNamespaces()).each(['docker-bridges', 'docker-user'] as const)(
  `the nftables backend when other tables accept, when its table is damaged, and when it stops, on a host with %s${skipNote()}`,
  (hostFirewall) => {
    let hostile: HostileLab;
    const backend = NFTABLES;
    const host = () => hostile.lab.host;
    const container = () => hostile.lab.containers[0]!;
    const nft = (script: string) => run('ip', ['netns', 'exec', host().name, 'nft', '-f', '-'], { input: `${script}\n` });
    const denied = () => probe(container(), { protocol: 'tcp', address: DENIED, port: 80 }, () => backend.drops.egress(host(), 4));
    const toHost = () => probe(container(), { protocol: 'icmp', address: GATEWAY }, () => backend.drops.host(host(), 4));
    const allowed = () => probe(container(), { protocol: 'tcp', address: ALLOWED, port: 80 });
    /** Every chain of our table (by name) with its hook and its rules' comments in order: what the daemon wrote, as the kernel has it now ('' without the table). */
    const ourRules = async () => {
      const listed = await execa('ip', ['netns', 'exec', host().name, 'nft', '-j', 'list', 'table', 'inet', 'on-his-name'], { reject: false });
      if (listed.exitCode !== 0) return '';
      type Item = { chain?: { name: string; hook?: string }; rule?: { chain: string; comment?: string } };
      const chains = new Map<string, string[]>();
      for (const { chain, rule } of (JSON.parse(String(listed.stdout)) as { nftables: Item[] }).nftables) {
        if (chain) chains.set(chain.name, [`hook ${chain.hook ?? '-'}`, ...(chains.get(chain.name) ?? [])]);
        if (rule) chains.set(rule.chain, [...(chains.get(rule.chain) ?? []), rule.comment ?? '(no comment)']);
      }
      return [...chains].sort(([a], [b]) => a.localeCompare(b)).map(([name, lines]) => `${name}: ${lines.join(' | ')}`).join('\n');
    };
    const start = () =>
      hostile.start([
        ...backend.args,
        '--dns-listen', `${GATEWAY}:53`,
        '--dns-upstream', '127.0.0.1:5300',
        '--reconcile-interval', String(RECONCILE_SECONDS),
        '--admin-listen', String(NFT_ADMIN_PORT),
        'allowed.test.',
      ]);

    beforeAll(async () => {
      const unavailable = await backend.unavailable();
      if (unavailable) throw new Error(unavailable);
      hostile = await createHostileLab({ hostFirewall });
      hostile.track(await startFakeDns(host(), { listen: '127.0.0.1', port: 5300, zone: 'test.', records: DEFAULT_RECORDS }));
      await start();
      expect(await hostile.lab.resolve('allowed.test')).toEqual([ALLOWED]);
    }, 60_000);

    printOnFailure(async () => firewallReport((await backend.listing(host())).split('\n'), hostile.daemon?.output(), backend.name));

    afterAll(async () => {
      await hostile?.close();
    });

    it("an accept for the bridge in other tables' chains, at an earlier priority or in the host's own, lets nothing past our drop; /healthz stays 200", async () => {
      const bridge = hostile.lab.bridge;
      const undo: Array<() => Promise<unknown>> = [];
      try {
        await nft(`table inet early {
          chain forward { type filter hook forward priority -300; policy accept; iifname "${bridge}" accept; }
          chain input { type filter hook input priority -300; policy accept; iifname "${bridge}" accept; }
        }`);
        undo.push(() => nft('delete table inet early'));
        if (hostFirewall === 'docker-bridges') {
          await nft(`insert rule ip docker-bridges filter-FORWARD iifname "${bridge}" accept`);
        } else {
          await hostile.lab.iptables('-I', 'FORWARD', '1', '-i', bridge, '-j', 'ACCEPT');
          undo.push(() => hostile.lab.iptables('-D', 'FORWARD', '-i', bridge, '-j', 'ACCEPT'));
          await hostile.lab.iptables('-I', 'DOCKER-USER', '1', '-j', 'ACCEPT');
          undo.push(() => hostile.lab.iptables('-D', 'DOCKER-USER', '-j', 'ACCEPT'));
          await hostile.lab.iptables('-I', 'INPUT', '1', '-i', bridge, '-j', 'ACCEPT');
          undo.push(() => hostile.lab.iptables('-D', 'INPUT', '-i', bridge, '-j', 'ACCEPT'));
        }
        expect(await denied()).toBe('dropped');
        expect(await toHost()).toBe('dropped');
        expect(await allowed()).toBe('reached');
        // Two reconciles: nothing there is ours to report.
        await new Promise((resolve) => setTimeout(resolve, 2_000 * RECONCILE_SECONDS + 200));
        expect((await hostile.admin(NFT_ADMIN_PORT, '/healthz')).status).toBe(200);
        expect(hostile.daemon!.lines.filter((l) => l.level === 50)).toEqual([]);
      } finally {
        for (const step of undo.reverse()) await step();
        if (hostFirewall === 'docker-bridges') await nft(`delete rule ip docker-bridges filter-FORWARD handle ${await handleOf('docker-bridges', 'filter-FORWARD', 'accept', bridge)}`);
      }
    }, TEST_MS);

    it('a drop in a later table is final, even for an address an answer opened', async () => {
      await nft(`table inet late {
        chain forward {
          type filter hook forward priority 100; policy accept;
          ip daddr ${ALLOWED} counter drop
        }
      }`);
      try {
        const lateDrops = async () => Number(/counter packets (\d+)/.exec(await host().exec('nft', ['list', 'chain', 'inet', 'late', 'forward']))?.[1] ?? 0);
        expect(await probe(container(), { protocol: 'tcp', address: ALLOWED, port: 80 }, lateDrops)).toBe('dropped');
      } finally {
        await nft('delete table inet late');
      }
      expect(await allowed()).toBe('reached');
    });

    it.each(DAMAGE)('%s: repaired at the next reconcile, with a warning', async (what, command, warning) => {
      const daemon = hostile.daemon!;
      const intact = await ourRules();
      const knock = await startReady(container(), SCRIPTS.knock, [DENIED, '80', '20', String(HOLD_MS)]);
      try {
        const logged = daemon.lines.length;
        const damaged = performance.now();
        await nft(command);
        const repaired = async () => (await ourRules()) === intact && (await backend.holds(host(), 4)).addresses.has(ALLOWED);
        await pollUntil(repaired, Boolean, RECONCILE_SECONDS * 1000 + 5_000, `our table as it was, ${ALLOWED} open`, 5);
        const windowMs = performance.now() - damaged;
        await pollUntil(async () => daemon.lines.slice(logged).find((l) => l.msg.startsWith(warning)), Boolean, 5_000, `the warning "${warning}"`);
        // Every connection that got through has been used again, well after the repair.
        const through = knock.lines.filter((l) => typeof l.through === 'number').length;
        await pollUntil(async () => knock.lines.filter((l) => typeof l.answered === 'number' || typeof l.lost === 'number').length, (n) => n >= through, HOLD_MS + 5_000, 'every connection used again');
        const answered = knock.lines.filter((l) => typeof l.answered === 'number').length;
        console.info(
          `nftables on ${hostFirewall}, ${what}: repaired ${Math.round(windowMs)} ms later (--reconcile-interval ${RECONCILE_SECONDS}); ` +
            `${through} connections to a closed address got through meanwhile, ${answered} of them still answered ${HOLD_MS / 1000} s later`,
        );
        expect(windowMs).toBeLessThan(RECONCILE_SECONDS * 1000 + 2_000);
      } finally {
        await knock.stop();
      }
      expect(await denied()).toBe('dropped');
      expect(await toHost()).toBe('dropped');
      expect(await allowed()).toBe('reached');
    }, TEST_MS);

    it('stopped, gently or killed, it leaves egress closed and what it opened open, and no nft process behind', async () => {
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        const daemon = hostile.daemon ?? (await start());
        process.kill(daemon.pid!, signal);
        await daemon.exited;
        await hostile.stopDaemon();
        expect(await denied(), signal).toBe('dropped');
        expect(await toHost(), signal).toBe('dropped');
        expect(await allowed(), signal).toBe('reached');
        const left = await pollUntil(async () => (await processNames(host().name)).filter((name) => name === 'nft' || name === 'stdbuf'), (names) => names.length === 0, 5_000, 'no nft process left');
        expect(left).toEqual([]);
      }
    }, TEST_MS);

    /** The handle of the first rule of `table`'s `chain` (family ip) whose listing has every word of `words`. */
    async function handleOf(table: string, chain: string, ...words: string[]): Promise<string> {
      const listed = await host().exec('nft', ['-a', 'list', 'chain', 'ip', table, chain]);
      const line = listed.split('\n').find((l) => words.every((w) => l.includes(w)) && / handle \d+$/.test(l));
      if (!line) throw new Error(`no rule with ${words.join(' ')} in ${table} ${chain}:\n${listed}`);
      return /handle (\d+)$/.exec(line)![1]!;
    }
  },
);

/** The names (comm) of the processes in a namespace. */
async function processNames(namespace: string): Promise<string[]> {
  const pids = String((await execa('ip', ['netns', 'pids', namespace], { reject: false })).stdout).split('\n').filter(Boolean);
  const names = await Promise.all(pids.map((pid) => execa('cat', [`/proc/${pid}/comm`], { reject: false }).then((r) => String(r.stdout).trim())));
  return names.filter(Boolean);
}
