/**
 * The kernel side of every policy's firewalls, built in one place: which backend
 * (firewall/choose.ts, from what the host looks like), each policy's backend of each
 * family, and the routes that send a client with a policy of its own to it.
 *
 *   iptables  the default policy's per-address rules in DOCKER-USER; another policy's in a
 *             chain of its own (OHN-P-NAME); clients routed by ON-HIS-NAME-CLIENTS
 *   ipset     the same chains, each holding one rule per protocol for the policy's set
 *   nftables  one table of our own for both families: a set and a chain per policy,
 *             clients routed by verdict maps (firewall/nft/)
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { DockerSystem } from '../docker/info.js';
import { firewallBackendDriver } from '../docker/info.js';
import { BLOCKED_SETS, blockedCreateLine, parseBlockedSave, type BlockedReader } from '../firewall/blocked.js';
import { chooseBackend, type BackendName } from '../firewall/choose.js';
import { nftBlockedReader } from '../firewall/nft/blocked.js';
import type { KernelOptions } from '../firewall/firewall.js';
import { IpsetBackend } from '../firewall/ipset-backend.js';
import { IptablesBackend } from '../firewall/iptables-backend.js';
import { DEFAULT_MAX_ELEMENTS, POLICY_SET_PREFIX, setFor } from '../firewall/ipset.js';
import type { IpsetRunner } from '../firewall/ipset-runner.js';
import type { IptablesRunner } from '../firewall/iptables.js';
import { NftablesBackend } from '../firewall/nft/backend.js';
import type { NftRunner } from '../firewall/nft/runner.js';
import type { NftLayout } from '../firewall/nft/render.js';
import { NftTable } from '../firewall/nft/table.js';
import { planRoutes, type Layout } from '../firewall/planner.js';
import { POLICY_CHAIN_PREFIX, policyChain } from '../firewall/rules.js';
import { DEFAULT_POLICY, type Policy } from '../policy/policies.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConfigError } from '../util/errors.js';
import type { Closers } from './closers.js';
import { layoutFor, type Family, type FilteredBridge } from './filtered-bridge.js';

export interface KernelDeps {
  runner: IptablesRunner;
  runner6?: IptablesRunner | undefined;
  ipset?: (() => IpsetRunner) | undefined;
  nft?: (() => NftRunner) | undefined;
  docker?: Partial<DockerSystem> | undefined;
  log: Logger;
  /** The wall clock the nftables and ipset backends write element timeouts by: the firewalls' own. */
  clock?: Clock | undefined;
}

export interface Route {
  /** An address or a range. */
  client: string;
  policy: string;
}

/** What the daemon asks of the kernel, whatever the backend. */
export interface Kernels {
  backend: BackendName;
  /** Why this backend, as logged at start. */
  reason: string;
  /** True when the backend filters IPv6 whatever the host has (one nftables table for both families). */
  ipv6Always: boolean;
  /** The families a firewall can be built for (iptables without ip6tables: IPv4 only). */
  families: Family[];
  /** One policy's kernel side in one family. */
  kernel(policy: Policy, family: Family): KernelOptions;
  /** The policies there are: where the backend keeps one object for all of them (the nftables table), it is told first. */
  usePolicies(policies: readonly Policy[]): Promise<void>;
  /** Send each client with a policy of its own to it, in one transaction per family filtered. */
  route(routes: readonly Route[], families: readonly Family[]): Promise<void>;
  /** The network was re-created: the routes and the table follow the new bridge. */
  follow(view: FilteredBridge): void;
  /** Remove what a policy no longer in use left in the kernel (its chain, its sets). */
  forget(policy: string): Promise<void>;
  /** What drains the kernel's record of blocked attempts, per family; none when nothing records (no ipset, or the view is off). */
  blocked(): BlockedReader[];
}

export async function kernelsFor(config: Config, view: FilteredBridge, deps: KernelDeps, closers: Closers): Promise<Kernels> {
  const { backend, reason } = chooseBackend(config.backend, config.backend === 'auto' ? await hostFacts(view, deps) : {});
  closers.add('iptables', () => {
    deps.runner.close?.();
    deps.runner6?.close?.();
  });
  if (backend === 'nftables') {
    if (!deps.nft) throw new ConfigError('the nftables backend needs the nft command: apt-get install nftables');
    const runner = deps.nft();
    closers.add('nft', () => runner.close());
    return nftKernels(new NftTable(runner, nftLayout(view, config, [])), reason, config.blockedInterval > 0, secondsOf(deps.clock));
  }
  return iptablesKernels(backend, reason, config, view, deps, closers);
}

/** Wall-clock unix seconds on `clock`, as the backends reckon element timeouts. */
function secondsOf(clock: Clock = systemClock): () => number {
  return () => clock.now() / 1000;
}

function nftKernels(table: NftTable, reason: string, record: boolean, nowSeconds: () => number): Kernels {
  const readers = record ? ([4, 6] as const).map((family) => nftBlockedReader(table.runner, family)) : [];
  return {
    backend: 'nftables',
    reason,
    ipv6Always: true,
    families: [4, 6],
    kernel: (policy, family) => ({ backend: new NftablesBackend({ table, family, policy: policy.name, nowSeconds }) }),
    async usePolicies(policies) {
      table.usePolicies(policies.map((p) => ({ name: p.name, ports: p.ports, audit: p.audit })));
      await table.ensure();
    },
    route: (routes) => table.route(routes),
    follow: () => undefined, // each family's Firewall.moveTo tells the table
    forget: async () => undefined, // usePolicies without it deletes its chain and sets
    blocked: () => readers,
  };
}

async function iptablesKernels(backend: 'iptables' | 'ipset', reason: string, config: Config, first: FilteredBridge, deps: KernelDeps, closers: Closers): Promise<Kernels> {
  let view = first;
  const runners: Array<[Family, IptablesRunner]> = [[4, deps.runner], ...(deps.runner6 ? [[6, deps.runner6] as [Family, IptablesRunner]] : [])];
  const runnerOf = (family: Family) => runners.find(([f]) => f === family)![1];
  let ipset: IpsetRunner | undefined;
  if (backend === 'ipset') {
    if (!deps.ipset) throw new ConfigError('--backend ipset needs the ipset command: apt-get install ipset');
    const runner = deps.ipset();
    closers.add('ipset', () => runner.close());
    ipset = runner;
  }
  let recording: IpsetRunner | undefined;
  const layout = (policy: Policy, family: Family): Layout => ({
    ...layoutFor(view, family, policy.ports, config.hostPorts),
    audit: policy.audit,
    ...(recording ? { record: BLOCKED_SETS[family] } : {}),
  });
  const maxElements = Math.max(config.maxIps, DEFAULT_MAX_ELEMENTS);
  let inUse = new Set<string>();
  // The families routed (ip6tables may be there and still unusable).
  let filtered: readonly Family[] = [];
  if (config.blockedInterval > 0) {
    const runner = ipset ?? deps.ipset?.();
    recording = await blockedSets(runner, runners.map(([f]) => f), deps.log);
    if (runner && runner !== ipset) closers.add('ipset', () => runner.close());
  }
  const readers = recording ? runners.map(([family]) => ipsetBlockedReader(recording!, family)) : [];
  return {
    backend,
    reason,
    ipv6Always: false,
    families: runners.map(([f]) => f),
    blocked: () => readers,
    kernel(policy, family) {
      const own = policy.name === DEFAULT_POLICY ? undefined : policyChain(policy.name);
      if (!ipset) {
        return own ? { backend: new IptablesBackend(runnerOf(family), layout(policy, family), own) } : { runner: runnerOf(family), layout: layout(policy, family) };
      }
      return {
        backend: new IpsetBackend({
          iptables: runnerOf(family),
          ipset,
          layout: layout(policy, family),
          set: setFor(family, policy.name),
          ...(own ? { chain: own } : {}),
          maxElements,
          log: deps.log,
          nowSeconds: secondsOf(deps.clock),
        }),
      };
    },
    // Each policy's Firewall makes its own chain (and set) when it starts; here only the names are kept.
    async usePolicies(policies) {
      inUse = new Set(policies.map((p) => p.name));
    },
    async route(routes, families) {
      for (const [family, runner] of runners.filter(([f]) => families.includes(f))) {
        const ofFamily = routes
          .filter((r) => (r.client.includes(':') ? 6 : 4) === family)
          .map((r) => ({ client: r.client, target: r.policy === DEFAULT_POLICY ? 'RETURN' : policyChain(r.policy) }));
        const script = planRoutes(await runner.list(), view.bridge, ofFamily);
        if (script) await runner.restore(script);
      }
      filtered = families;
      await pruneStale(runners.filter(([f]) => filtered.includes(f)), ipset, inUse);
    },
    follow(next) {
      view = next;
    },
    async forget(policy) {
      inUse.delete(policy);
      await pruneStale(runners.filter(([f]) => filtered.includes(f)), ipset, inUse);
    },
  };
}

/**
 * The ipsets ON-HIS-NAME-RECORD fills, made (or kept) now, before any rule names them.
 * Without ipset (or the kernel's SET target) nothing is recorded: said once, and every
 * DROP still drops.
 */
async function blockedSets(ipset: IpsetRunner | undefined, families: readonly Family[], log: Logger): Promise<IpsetRunner | undefined> {
  const why = (reason: string) => log.warn({ reason }, `no blocked view: ${reason}; blocked attempts are counted by the DROP rules only`);
  if (!ipset) return void why('no ipset here (apt-get install ipset)');
  try {
    await ipset.restore(families.map((f) => `${blockedCreateLine(f)}\n`).join(''));
    return ipset;
  } catch (err) {
    const message = (err as Error).message;
    // The persistent runner finds no ipset only when it first runs it: this is the first line.
    if (/No such file|not found|ENOENT/.test(message)) return void why('no ipset here (apt-get install ipset)');
    return void why(/already exists/.test(message) ? `${message}: a set of an older layout, which on-his-name reset removes` : message);
  }
}

/** Read a family's blocked ipset and empty it (firewall/blocked.ts). */
function ipsetBlockedReader(ipset: IpsetRunner, family: Family): BlockedReader {
  return {
    family,
    async drain() {
      const text = await ipset.save(BLOCKED_SETS[family]);
      const attempts = text ? parseBlockedSave(text) : [];
      if (attempts.length) await ipset.restore(`flush ${BLOCKED_SETS[family]}\n`);
      return attempts;
    },
  };
}

/**
 * Remove the chains and sets of policies not in use: one that left the file, or one a
 * previous run had. Only once no route names them (the kernel refuses to delete a chain a
 * rule jumps to, and a set a rule matches).
 */
async function pruneStale(runners: ReadonlyArray<[Family, IptablesRunner]>, ipset: IpsetRunner | undefined, inUse: ReadonlySet<string>): Promise<void> {
  for (const [, runner] of runners) {
    const chains = (await runner.list())
      .filter((line) => line.startsWith(`-N ${POLICY_CHAIN_PREFIX}`))
      .map((line) => line.slice(3))
      .filter((chain) => !inUse.has(chain.slice(POLICY_CHAIN_PREFIX.length)));
    if (chains.length) await runner.restore(`*filter\n${[...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`)].join('\n')}\nCOMMIT\n`);
  }
  if (!ipset) return;
  const staleSet = (name: string) => name.startsWith(POLICY_SET_PREFIX) && /-v[46]$/.test(name) && !inUse.has(name.slice(POLICY_SET_PREFIX.length, -3));
  for (const set of (await ipset.names()).filter(staleSet)) await ipset.destroy(set);
}

/** The table's layout: both families' subnets and DNS targets, the default policy's ports, the other policies, the host ports. */
export function nftLayout(view: FilteredBridge, config: Pick<Config, 'ports' | 'hostPorts' | 'blockedInterval'>, policies: NftLayout['policies'] = []): NftLayout {
  return { bridge: view.bridge, ports: config.ports, hostPorts: config.hostPorts, 4: view[4], 6: view[6], policies, record: config.blockedInterval > 0 };
}

/** What `auto` looks at; anything that cannot be read counts as absent. */
async function hostFacts(view: FilteredBridge, deps: KernelDeps) {
  const [iptables, ip6tables, info] = await Promise.all([
    deps.runner.list().catch(() => undefined),
    deps.runner6?.list().catch(() => undefined),
    deps.docker?.info?.().catch(() => undefined),
  ]);
  return { iptables, ip6tables, ipv6Because: view.ipv6Because, dockerFirewall: info ? firewallBackendDriver(info) : undefined };
}
