/**
 * Policies per container on the packet path (issue 14): new TCP connections per second
 * from one client through the firewall when 50 clients each have a policy of their own
 * with 1,000 open addresses (50,000 in all), against the default policy alone with 1,000,
 * on each backend, as the daemon lays them out:
 *
 *   iptables  DOCKER-USER jumps to ON-HIS-NAME-CLIENTS, one `-s CLIENT -g OHN-P-NAME` rule
 *             per client, and the policy's chain holds its per-address ACCEPTs
 *   ipset     the same routes; each policy's chain matches its own set ohn-p-NAME-v4
 *   nftables  table inet on-his-name: the client looked up in the verdict map clients4,
 *             which jumps to the chain policy-NAME and its set p-NAME-4
 *
 * Every row is installed by the daemon's own code: kernelsFor and PolicyFirewalls with the
 * CLI's long-lived iptables-restore, `ipset -` and `nft -i`, a Firewall per policy, each
 * address allowed through it with a one-hour lifetime. The measured client (192.0.2.10) is
 * routed last of the 50 (the other 49 routes name addresses that send nothing), and the
 * tested address is the last its policy opened (for iptables, the last ACCEPT of its chain).
 * The lab and the measurement are bench/packet-lab.ts's, as in bench/packet-path.ts.
 *
 * What it guards against: a layout in which a packet walks every policy's addresses, or
 * every policy in turn, instead of going straight to its own. The "bench only" row is
 * that bad result for per-address rules: the 50 policies' 100,000 rules in one chain that
 * every SYN walks (each rule `-s CLIENT -d ADDRESS`), which costs about what the
 * 10,000-address rows of bench/packet-path.ts cost (2026-11-30: 91 % of the connection
 * rate, about half the default policy's row and a seventh of the 50-policy row). With
 * policy chains, the iptables 50-policy row must stay at or above the default policy's
 * 1,000-address row; a set backend's 50-policy row must stay level with its default row
 * (50 set lookups in turn, or a lookup that grew with the 50,000 elements, would drag it
 * towards the per-address rows).
 *
 *   sudo npx tsx bench/policy-packet-path.ts [runs=5] [seconds=4]      (about 10 minutes)
 *
 * VARIANTS=0,1,2 runs only those rows (0 is the baseline); POLICIES=50 and PER_POLICY=1000
 * change the layout; CONNECTIONS=32 sets wrk's parallel connections.
 *
 * Needs root, wrk (apt-get install wrk), iptables, ipset, nft, conntrack, taskset.
 */
import { execa } from 'execa';
import { pino } from 'pino';
import { parseConfig } from '../src/config/config.js';
import { Closers } from '../src/daemon/closers.js';
import type { FilteredBridge } from '../src/daemon/filtered-bridge.js';
import { kernelsFor, type Route } from '../src/daemon/kernels.js';
import { PolicyFirewalls } from '../src/daemon/policy-firewalls.js';
import { iptablesRunner } from '../src/firewall/iptables.js';
import { persistentIpset } from '../src/firewall/ipset-runner.js';
import { nftRunner } from '../src/firewall/nft/runner.js';
import { parseOwnedRule } from '../src/firewall/rules.js';
import { DEFAULT_POLICY, PolicySet } from '../src/policy/policies.js';
import { parsePolicyFile } from '../src/policy/policy-file.js';
import { CONTAINERS, GATEWAY, type FirewallLab } from '../test/lab/firewall-lab.js';
import { BRIDGE, PORT, PORTS, TESTED, checkTools, chunks, filler, measure, restore, type Variant } from './packet-lab.js';

const RUNS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 4);
const POLICIES = Number(process.env.POLICIES ?? 50);
const PER_POLICY = Number(process.env.PER_POLICY ?? 1000);
/** The measured client: wrk runs in the lab's first container. */
const CLIENT = CONTAINERS[0];
const log = pino({ level: 'silent' });

type Backend = 'iptables' | 'ipset' | 'nftables';

const VIEW: FilteredBridge = {
  bridge: BRIDGE,
  4: { subnets: ['192.0.2.0/24'], dns: [{ address: GATEWAY, port: 53 }] },
  6: { subnets: [], dns: [] },
  ipv6Because: undefined,
};

const policyName = (i: number) => `p${String(i).padStart(2, '0')}`;
/** The other clients: addresses on the bridge's subnet that no one uses, so that they send nothing. */
const otherClient = (i: number) => `192.0.2.${100 + i}`;

/**
 * The daemon's own kernel side for `policies` policies of `perPolicy` addresses each (none:
 * the default policy holds `perPolicy`), the measured client routed last, its policy's
 * tested address opened last. The firewalls stop (their rules stay) before the row is measured.
 */
function daemonLayout(backend: Backend, policies: number, perPolicy: number): Variant['setup'] {
  return async (lab) => {
    const prefix = ['ip', 'netns', 'exec', lab.host.name];
    const config = parseConfig(['--backend', backend, '--interface', BRIDGE, '--reconcile-interval', '0', '--max-ips', String(perPolicy), '--ports', PORTS.join(','), 'allowed.test.'], {});
    const yaml = ['policies:', ...Array.from({ length: policies }, (_, i) => `  ${policyName(i)}: {allow: ["*.${policyName(i)}.test."]}`)].join('\n');
    const set = PolicySet.compile(['**.default.test.'], config.ports, policies ? parsePolicyFile(yaml, 'policies.yaml') : undefined);
    const routes: Route[] = Array.from({ length: policies }, (_, i) => ({ client: i === policies - 1 ? CLIENT : otherClient(i), policy: policyName(i) }));
    const closers = new Closers();
    const deps = {
      runner: iptablesRunner({ prefix, persistent: true }),
      ipset: () => persistentIpset({ prefix }), // kernelsFor gives each it makes to the closers
      nft: () => nftRunner({ prefix, persistent: true }),
      log,
    };
    const kernels = await kernelsFor(config, VIEW, deps, closers);
    const firewalls = new PolicyFirewalls({ kernels, config, log, ipv6Because: undefined });
    try {
      await firewalls.start(set.defaultPolicy, [...set.named.values()], routes);
      // The measured client's policy (the last), or the default one, holds the tested address.
      const owners = policies ? Array.from({ length: policies }, (_, i) => policyName(i)) : [DEFAULT_POLICY];
      let next = 0;
      for (const owner of owners) {
        const firewall = firewalls.firewall(owner, 4)!;
        const tested = owner === owners.at(-1);
        for (let j = 0; j < perPolicy - (tested ? 1 : 0); j++) firewall.allow(filler(next++), `f${j}.${owner}.test.`, 3600);
        if (tested) firewall.allow(TESTED, `tested.${owner}.test.`, 3600);
      }
      await Promise.all(firewalls.list().map((f) => f.firewall.settled()));
      const open = firewalls.list().reduce((n, f) => n + f.firewall.allowedCount, 0);
      const wanted = (policies || 1) * perPolicy;
      if (open !== wanted) throw new Error(`${open} addresses open, not ${wanted}`);
    } finally {
      await firewalls.stop(5_000, log); // no expiry or reconcile timers while the row is measured
      await closers.closeAll();
    }
    return where(lab, backend, policies ? policyName(policies - 1) : DEFAULT_POLICY, policies);
  };
}

/** Where the measured client's SYN meets its ACCEPT, read back from the kernel. */
async function where(lab: FirewallLab, backend: Backend, policy: string, policies: number): Promise<string> {
  const route = async () => {
    if (!policies) return 'no route';
    const routes = (await lab.iptables('-S', 'ON-HIS-NAME-CLIENTS')).split('\n').filter((l) => l.startsWith('-A'));
    const at = routes.findIndex((l) => l.includes(`-s ${CLIENT}/32`));
    if (at < 0) throw new Error(`no route for ${CLIENT}`);
    return `route ${at + 1} of ${routes.length}`;
  };
  if (backend === 'iptables') {
    const chain = policy === DEFAULT_POLICY ? 'DOCKER-USER' : `OHN-P-${policy}`;
    const accepts = (await lab.iptables('-S', chain)).split('\n').map(parseOwnedRule).filter((r) => r?.role === 'accept');
    const at = accepts.findIndex((r) => r?.address === TESTED && r.port === PORT);
    if (at < 0) throw new Error(`no ACCEPT for ${TESTED}:${PORT} in ${chain}`);
    return `${await route()}, ACCEPT ${at + 1} of ${accepts.length}`;
  }
  if (backend === 'ipset') {
    const sets = (await lab.hostExec('ipset', ['list', '-t'])).split('\n\n').filter((s) => /Name: (on-his-name-v4|ohn-p-)/.test(s));
    const elements = sets.reduce((n, s) => n + Number(/Number of entries: (\d+)/.exec(s)?.[1] ?? 0), 0);
    return `${await route()}, ${sets.length} set(s) of ${elements} in all`;
  }
  const table = await lab.hostExec('nft', ['list', 'table', 'inet', 'on-his-name']);
  const elements = (table.match(/\b198\.\d+\.\d+\.\d+\b/g) ?? []).length;
  const mapped = policies ? `client ${CLIENT} in map clients4 → policy-${policy}` : 'no route';
  if (policies && !new RegExp(`${CLIENT.replaceAll('.', '\\.')} : jump policy-${policy}\\b`).test(table)) throw new Error(`clients4 does not send ${CLIENT} to policy-${policy}`);
  return `${mapped}, ${elements} elements in all`;
}

/**
 * Bench only, the bad result: every policy's per-address rules in one chain that every SYN
 * from the bridge walks, each rule naming its client (`-s CLIENT -d ADDRESS`), the measured
 * client's last. What a layout without a route per client would cost.
 */
function oneWalk(policies: number, perPolicy: number): Variant['setup'] {
  return async (lab) => {
    const lines = [':OHN-WALK - [0:0]'];
    let next = 0;
    for (let i = 0; i < policies; i++) {
      const client = i === policies - 1 ? CLIENT : otherClient(i);
      const addresses = Array.from({ length: perPolicy - (i === policies - 1 ? 1 : 0) }, () => filler(next++));
      if (i === policies - 1) addresses.push(TESTED);
      for (const address of addresses) for (const port of PORTS) lines.push(`-A OHN-WALK -s ${client}/32 -d ${address}/32 -p tcp -m tcp --dport ${port} -j ACCEPT`);
    }
    // In pieces: one restore of 100,000 rules is slow for iptables-nft to parse at once.
    await restore(lab, lines.slice(0, 1));
    for (const piece of chunks(lines.slice(1), 10_000)) await restore(lab, piece);
    await restore(lab, [
      `-I DOCKER-USER 1 -i ${BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      `-I DOCKER-USER 2 -i ${BRIDGE} -j OHN-WALK`,
      `-I DOCKER-USER 3 -i ${BRIDGE} -j DROP`,
    ]);
    const count = (await execa('ip', ['netns', 'exec', lab.host.name, 'sh', '-c', 'iptables -S OHN-WALK | grep -c "^-A"'])).stdout.trim();
    return `ACCEPT ${count} of ${count}`;
  };
}

async function main(): Promise<void> {
  if (!(RUNS >= 1 && RUNS <= 20 && SECONDS >= 1 && SECONDS <= 60)) throw new Error('usage: policy-packet-path.ts [runs 1-20] [seconds 1-60]');
  if (!(POLICIES >= 1 && POLICIES <= 150 && PER_POLICY >= 1 && POLICIES * PER_POLICY <= 120_000)) throw new Error('POLICIES 1-150, PER_POLICY ≥ 1, 120,000 addresses at most');
  await checkTools();
  const n = (x: number) => x.toLocaleString('en-US');
  const many = `${POLICIES} policies × ${n(PER_POLICY)} addresses (${n(POLICIES * PER_POLICY)}), the client's route last`;
  const variants: Variant[] = [
    { label: "no on-his-name rules (Docker's DOCKER-USER only)", setup: async () => '-' },
    { label: `--backend iptables, default policy, ${n(PER_POLICY)} addresses`, setup: daemonLayout('iptables', 0, PER_POLICY) },
    { label: `--backend iptables, ${many}`, setup: daemonLayout('iptables', POLICIES, PER_POLICY) },
    { label: `bench only: the ${n(POLICIES * PER_POLICY * PORTS.length)} rules of ${POLICIES} policies in one chain every SYN walks`, setup: oneWalk(POLICIES, PER_POLICY) },
    { label: `--backend ipset, default policy, ${n(PER_POLICY)} addresses`, setup: daemonLayout('ipset', 0, PER_POLICY) },
    { label: `--backend ipset, ${many}`, setup: daemonLayout('ipset', POLICIES, PER_POLICY) },
    { label: `--backend nftables, default policy, ${n(PER_POLICY)} addresses`, setup: daemonLayout('nftables', 0, PER_POLICY) },
    { label: `--backend nftables, ${many}`, setup: daemonLayout('nftables', POLICIES, PER_POLICY) },
  ];
  const only = process.env.VARIANTS?.split(',').map(Number);
  const selected = only ? variants.filter((_, i) => only.includes(i)) : variants;
  await measure({ variants: selected, runs: RUNS, seconds: SECONDS, positionHeading: 'where the SYN is accepted' });
}

await main();
