/**
 * One firewall per policy and family, and the routes that send each client to its policy.
 *
 *   clients (policy/clients.ts) ─policies in use, routes─▶ PolicyFirewalls
 *     ├─ a Firewall per (policy, family): its own addresses, lifetimes and bounds, in the
 *     │  kernel object its backend keeps for it (kernels.ts)
 *     └─ routes: client address or range → its policy's chain (ON-HIS-NAME-CLIENTS, or the
 *        nftables maps)
 *
 * Each policy has its own --max-ips: a service flooded with fresh names evicts its own
 * addresses, never another service's. Changes keep a safe order: a policy's kernel objects
 * exist before a route names them; a route leaves a policy before its objects go.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { Firewall, type FirewallOptions } from '../firewall/firewall.js';
import type { Firewalls } from '../pipeline/pipeline.js';
import { DEFAULT_POLICY, type Policy } from '../policy/policies.js';
import { every, systemClock, type Clock, type Repeating, type Timer } from '../util/clock.js';
import { layoutFor, refuseIpv6, type Family, type FilteredBridge } from './filtered-bridge.js';
import type { Kernels, Route } from './kernels.js';

export interface PolicyFirewallsOptions {
  kernels: Kernels;
  config: Config;
  log: Logger;
  /** Why IPv6 must be filtered on this bridge, if it must: without ip6tables that is refused. */
  ipv6Because: string | undefined;
  onInKernel?: (family: Family) => ((latencyMs: number, count: number) => void) | undefined;
  /** The reconcile's beat, the stop's grace and every firewall's timers; systemClock unless a test moves time itself. */
  clock?: Clock;
}

export interface PolicyFirewall {
  policy: Policy;
  family: Family;
  firewall: Firewall;
}

export class PolicyFirewalls implements Firewalls {
  private readonly byPolicy = new Map<string, { policy: Policy; firewalls: Map<Family, Firewall> }>();
  private families: Family[] = [];
  private routes: Route[] = [];
  /** What the last update asked for, while the kernel has refused it: the next reconcile tries again. */
  private refused: { policies: readonly Policy[]; routes: readonly Route[]; commit?: (() => void) | undefined } | undefined;
  private timer: Repeating | undefined;
  /** One change at a time: a reload, a container event and a reconcile never interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Once stopping, no change starts: the runners close after us, and one started then would spawn them again. */
  private stopping = false;

  private readonly clock: Clock;

  constructor(private readonly options: PolicyFirewallsOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** The default policy's firewalls first (their base rules close the bridge), then the others and the routes. */
  async start(defaultPolicy: Policy, others: readonly Policy[], routes: readonly Route[]): Promise<void> {
    const { kernels } = this.options;
    await kernels.usePolicies([defaultPolicy, ...others]);
    const entry = this.entry(defaultPolicy);
    const v4 = this.firewallOf(defaultPolicy, 4);
    await startOrStop(v4);
    entry.firewalls.set(4, v4);
    this.families = [4];
    if (kernels.families.includes(6)) {
      const v6 = this.firewallOf(defaultPolicy, 6);
      try {
        await startOrStop(v6);
        entry.firewalls.set(6, v6);
        this.families.push(6);
      } catch (err) {
        if (kernels.ipv6Always) throw err;
        if (this.options.ipv6Because) throw refuseIpv6(this.options.ipv6Because, (err as Error).message, err);
        this.options.log.warn({ err: (err as Error).message }, 'no IPv6 filtering (nothing carries IPv6 from the bridge): AAAA answers open nothing');
      }
    } else if (this.options.ipv6Because) {
      throw refuseIpv6(this.options.ipv6Because, 'no ip6tables runner');
    }
    await this.apply([defaultPolicy, ...others], routes);
    const interval = this.options.config.reconcileInterval * 1000;
    if (interval > 0) this.timer = every(this.clock, interval, () => void this.reconcile().catch((err: Error) => this.options.log.warn({ err: err.message }, 'reconcile failed')));
  }

  /** Is IPv6 filtered? */
  get ipv6(): boolean {
    return this.families.includes(6);
  }

  firewall(policy: string, family: Family): Firewall | undefined {
    return this.byPolicy.get(policy)?.firewalls.get(family);
  }

  /** Every policy's firewall of every family, for the admin API and the metrics. */
  list(): PolicyFirewall[] {
    return [...this.byPolicy.values()].flatMap(({ policy, firewalls }) => [...firewalls].map(([family, firewall]) => ({ policy, family, firewall })));
  }

  /**
   * The policies in use and the routes are now these: new policies get their firewalls,
   * changed ones their new ports and patterns (addresses no longer allowed close), then
   * `commit` makes the decisions follow (no decision names a policy before its firewall
   * exists: its answer would open nothing, silently), the routes are written, and policies
   * no longer in use go, their addresses closed. A change the kernel refused is made again,
   * commit included, by the next reconcile, unless a later change came meanwhile.
   */
  update(policies: readonly Policy[], routes: readonly Route[], commit?: () => void): Promise<void> {
    return this.serially(async () => {
      let pending = commit;
      const once = () => {
        pending?.();
        pending = undefined;
      };
      try {
        await this.apply(policies, routes, once);
        this.refused = undefined;
      } catch (err) {
        // Until it is made, a client may still be routed to the policy its address had before.
        this.refused = { policies, routes, commit: pending };
        throw err;
      }
    });
  }

  /** Read the kernel again everywhere and restore what someone else took away; make a change the kernel refused. */
  reconcile(): Promise<void> {
    return this.serially(async () => {
      if (this.refused) {
        await this.apply(this.refused.policies, this.refused.routes, this.refused.commit);
        this.refused = undefined;
      }
      for (const { firewall } of this.list()) await firewall.reconcile();
      await this.options.kernels.route(this.routes, this.families);
    });
  }

  /** The network was re-created: every firewall moves to the new bridge, and the routes with it. */
  moveTo(view: FilteredBridge): Promise<void> {
    return this.serially(async () => {
      this.options.kernels.follow(view);
      for (const { policy, family, firewall } of this.list()) {
        // The new bridge's addresses and DNS; the policy's mode and the record set stay.
        await firewall.moveTo(view.bridge, { ...firewall.layout, ...layoutFor(view, family, policy.ports, this.options.config.hostPorts) });
      }
      await this.options.kernels.route(this.routes, this.families);
    });
  }

  /** Let queued rules land (within `graceMs`), then stop every loop: the rules stay in the kernel. */
  async stop(graceMs: number, log: Logger): Promise<void> {
    this.timer?.stop();
    this.stopping = true;
    const all = this.list().map((p) => p.firewall);
    let timer: Timer | undefined;
    const grace = new Promise<false>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), graceMs);
    });
    // The change under way (a reconcile the ruleset watch asked for just before, a reload) ends first.
    const settled = await Promise.race([this.queue.then(() => Promise.all(all.map((f) => f.settled()))).then(() => true), grace]);
    this.clock.clearTimeout(timer!);
    if (!settled) log.warn({ graceMs }, 'stopping with addresses still waiting for the kernel');
    for (const f of all) f.stop();
    await Promise.all(all.map((f) => f.settled()));
  }

  private async apply(policies: readonly Policy[], routes: readonly Route[], commit?: () => void): Promise<void> {
    const { kernels } = this.options;
    const wanted = new Set(policies.map((p) => p.name));
    const leaving = [...this.byPolicy.values()].filter(({ policy }) => !wanted.has(policy.name) && policy.name !== DEFAULT_POLICY);
    // Kernel objects for every policy, old and new, before a route names one…
    await kernels.usePolicies([...policies, ...leaving.map((l) => l.policy)]);
    for (const policy of policies) {
      const known = this.byPolicy.get(policy.name);
      if (known) await this.change(known, policy);
      else await this.open(policy);
    }
    // …then the decisions and the routes…
    commit?.();
    this.routes = [...routes];
    await kernels.route(this.routes, this.families);
    // …and only then the policies no one is routed to any more.
    for (const { policy, firewalls } of leaving) {
      for (const firewall of firewalls.values()) firewall.stop();
      this.byPolicy.delete(policy.name);
      await kernels.forget(policy.name);
    }
    if (leaving.length) await kernels.usePolicies(policies);
  }

  /**
   * A policy new to the firewall: its firewalls in every family filtered, started. Known
   * only once all have started: a policy the kernel refused is opened again by the next
   * update, never taken for one whose chains exist (a route to it would fail every time).
   */
  private async open(policy: Policy): Promise<void> {
    const firewalls = new Map<Family, Firewall>();
    try {
      for (const family of this.families) {
        const firewall = this.firewallOf(policy, family);
        await startOrStop(firewall);
        firewalls.set(family, firewall);
      }
    } catch (err) {
      for (const firewall of firewalls.values()) firewall.stop();
      throw err;
    }
    this.byPolicy.set(policy.name, { policy, firewalls });
  }

  /**
   * A policy reloaded: other ports rewrite its rules, audit mode switched replaces its last
   * rule, and an address its patterns no longer allow closes.
   */
  private async change(known: { policy: Policy; firewalls: Map<Family, Firewall> }, policy: Policy): Promise<void> {
    const before = known.policy;
    known.policy = policy;
    if (before.audit !== policy.audit) this.options.log.warn({ policy: policy.name, audit: policy.audit }, policy.audit ? `policy ${policy.name} is now in AUDIT mode: nothing it would block is blocked` : `policy ${policy.name} now enforces`);
    for (const firewall of known.firewalls.values()) {
      if (!samePorts(before.ports, policy.ports) || before.audit !== policy.audit) {
        await firewall.moveTo(firewall.layout.bridge, { ...firewall.layout, ports: policy.ports, audit: policy.audit });
      }
      firewall.retain((name) => policy.patterns.match(name) !== undefined);
    }
  }

  private entry(policy: Policy): { policy: Policy; firewalls: Map<Family, Firewall> } {
    let entry = this.byPolicy.get(policy.name);
    if (!entry) this.byPolicy.set(policy.name, (entry = { policy, firewalls: new Map() }));
    return entry;
  }

  private firewallOf(policy: Policy, family: Family): Firewall {
    const { config, kernels, log } = this.options;
    const onInKernel = this.options.onInKernel?.(family);
    const options: FirewallOptions = {
      ...kernels.kernel(policy, family),
      log: log.child({ component: 'firewall', ...(family === 6 ? { family } : {}), ...(policy.name !== DEFAULT_POLICY ? { policy: policy.name } : {}) }),
      minTtl: config.minTtl,
      ttlGrace: config.ttlGrace,
      maxIps: config.maxIps,
      maxIpsPerName: config.maxIpsPerName,
      clock: this.clock,
      ...(onInKernel ? { onInKernel } : {}),
    };
    return new Firewall(options);
  }

  private serially(work: () => Promise<void>): Promise<void> {
    // Stopping: the change is dropped, as one arriving after the stop would be; the rules stay as they are.
    const next = this.queue.then(() => (this.stopping ? undefined : work()));
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** A firewall that cannot start leaves no timer behind. */
async function startOrStop(firewall: Firewall): Promise<void> {
  try {
    await firewall.start();
  } catch (err) {
    firewall.stop();
    throw err;
  }
}

function samePorts(a: readonly { protocol: string; port: number }[], b: readonly { protocol: string; port: number }[]): boolean {
  const key = (ports: readonly { protocol: string; port: number }[]) => ports.map((p) => `${p.protocol}/${p.port}`).sort().join(',');
  return key(a) === key(b);
}
