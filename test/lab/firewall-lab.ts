/**
 * A firewall lab in network namespaces, shaped like a Docker host:
 *
 *   container 0 (192.0.2.10) ─┐
 *   container 1 (192.0.2.11) ─┤ bridge ohnbr0 (192.0.2.1, unbound + dnstap)   host namespace
 *                             │   FORWARD → DOCKER-USER (a foreign REJECT, then RETURN as older Docker)
 *                             └─ uplink (198.51.100.1) ── internet (198.51.100.10-14, 203.0.113.10)
 *                                                          TCP servers on 80, 443, 8080
 *
 * Nothing has a route out of the lab. close() kills every process and removes every
 * namespace; the same happens at process exit or on SIGINT/SIGTERM if close() never ran.
 * The daemon under test runs in the host namespace (`ip netns exec lab.host.name …`) and
 * listens on `dnstapSocket`, chowned to unbound's uid (see unbound.ts for unbound's timing).
 */
import { execa } from 'execa';
import type { Layout } from '../../src/firewall/planner.js';
import { run } from './exec.js';
import { createInternet, type Internet } from './internet.js';
import { Namespace, attachToBridge } from './netns.js';
import { startUnbound, type Unbound, type ZoneRecord } from './unbound.js';

export const BRIDGE = 'ohnbr0';
export const GATEWAY = '192.0.2.1';
export const CONTAINERS = ['192.0.2.10', '192.0.2.11'] as const;
export const ZONE = 'test.';
export { INTERNET, PORTS, UPLINK } from './internet.js';
/** The firewall layout the daemon would build for this lab's bridge: its subnet, DNS on the gateway, no host port. */
export function labLayout(tcpPorts: readonly number[], bridge = BRIDGE): Layout {
  return { bridge, ports: tcpPorts.map((port) => ({ protocol: 'tcp' as const, port })), subnets: ['192.0.2.0/24'], dns: [{ address: GATEWAY, port: 53 }], hostPorts: [] };
}

/** The rule "someone else" owns in DOCKER-USER, as `iptables -S` prints it. */
export const FOREIGN_RULE = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';

/** Docker 29's nftables backend as it stands for one bridge: its own table, everything the bridge sends accepted, no DOCKER-USER. */
const DOCKER_BRIDGES = (bridge: string) => `table ip docker-bridges {
  chain filter-FORWARD {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "${bridge}" accept
  }
}
`;

/** The same names and answers as test/fixtures (capture.sh), minus multi.test's .10. */
export const DEFAULT_RECORDS: readonly ZoneRecord[] = [
  { name: 'allowed', type: 'A', value: '198.51.100.10' },
  { name: 'multi', type: 'A', value: '198.51.100.11' },
  { name: 'multi', type: 'A', value: '198.51.100.12' },
  { name: 'alias', type: 'CNAME', value: 'mid.test.' },
  { name: 'mid', type: 'CNAME', value: 'target.test.' },
  { name: 'target', type: 'A', value: '198.51.100.13' },
  { name: 'v6', type: 'A', value: '198.51.100.14' },
  { name: 'v6', type: 'AAAA', value: '2001:db8::10' },
  { name: 'denied', type: 'A', value: '203.0.113.10' },
];

export interface FirewallLabOptions {
  /** Where unbound sends dnstap; the daemon under test listens there. unbound retries until it appears. */
  dnstapSocket: string;
  /** Zone `test.` records; DEFAULT_RECORDS unless given. */
  records?: readonly ZoneRecord[];
  /** Bridge name in the host namespace (≤ 15 characters); default ohnbr0. */
  bridge?: string;
  /** Container addresses in 192.0.2.0/24; default 192.0.2.10 and 192.0.2.11. */
  containers?: readonly string[];
  /** More "internet" addresses (documentation ranges), e.g. one per fresh name in a benchmark. */
  internetAddresses?: readonly string[];
  /** Start unbound while building the lab instead of on startDns(). Default false. */
  startDns?: boolean;
  /** Extra unbound `server:` lines. */
  unboundConfig?: readonly string[];
  /**
   * What the host's firewall looks like before on-his-name: Docker's iptables backend
   * (DOCKER-USER, jumped to from FORWARD; the default), a DOCKER-USER nothing jumps to (Docker's
   * nftables backend after a reboot), or Docker 29's nftables backend (table ip docker-bridges,
   * a filter-FORWARD chain accepting what the bridge sends, no DOCKER-USER at all).
   */
  hostFirewall?: 'docker-user' | 'unjumped-docker-user' | 'docker-bridges';
}

export interface ResolveOptions {
  /** Index of the container to ask from; default 0. */
  from?: number;
  type?: 'A' | 'AAAA';
}

export interface ConnectOptions {
  from?: number;
  /** Give up after this long; default 3000 ms. */
  timeoutMs?: number;
  /** Same as timeoutMs, in seconds (older callers). */
  timeoutSeconds?: number;
}

export interface FirewallLab {
  host: Namespace;
  containers: Namespace[];
  internet: Namespace;
  bridge: string;
  gateway: string;
  containerAddresses: readonly string[];
  dnstapSocket: string;
  /** FOREIGN_RULE: the rule in DOCKER-USER that is not ours and must survive. */
  foreignRule: string;
  /** Start unbound on the gateway (once; later calls return the same one). */
  startDns(): Promise<Unbound>;
  /** The running unbound, if started. */
  dns(): Unbound | undefined;
  /** `dig +short` from a container: the addresses of the answer (CNAME targets left out). */
  resolve(name: string, options?: ResolveOptions): Promise<string[]>;
  /** A real TCP connection and HTTP exchange from a container: true when it completed. */
  connect(address: string, port: number, options?: ConnectOptions): Promise<boolean>;
  /** The HTTP body the internet server answered ("hello from ADDRESS:PORT", no newline), or undefined. */
  request(address: string, port: number, options?: ConnectOptions): Promise<string | undefined>;
  /** Run a command in the host namespace. */
  hostExec(command: string, args: readonly string[]): Promise<string>;
  /** iptables in the host namespace. */
  iptables(...args: string[]): Promise<string>;
  /** `iptables -S DOCKER-USER` in the host namespace, one rule per line. */
  listRules(): Promise<string[]>;
  /** Same as listRules(). */
  rules(): Promise<string[]>;
  /** Packet counters of DOCKER-USER rules, keyed by `iptables -S` rule text. */
  counters(): Promise<Map<string, number>>;
  /** Kill everything the lab started and remove its namespaces. Idempotent. */
  close(): Promise<void>;
}

export async function createFirewallLab(options: FirewallLabOptions): Promise<FirewallLab> {
  const bridge = options.bridge ?? BRIDGE;
  if (bridge.length > 15) throw new Error(`bridge name ${bridge} is longer than 15 characters`);
  const containerAddresses = options.containers ?? CONTAINERS;
  const namespaces: Namespace[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
      for (const ns of namespaces.splice(0)) await ns.remove();
    })());

  try {
    const host = await Namespace.create('ohnh');
    namespaces.push(host);
    const containers: Namespace[] = [];
    for (const _ of containerAddresses) {
      const ns = await Namespace.create('ohnc');
      namespaces.push(ns);
      containers.push(ns);
    }

    await host.createBridge(bridge, `${GATEWAY}/24`);
    await host.enableForwarding();
    for (const [i, ns] of containers.entries()) {
      await attachToBridge(host, bridge, `veth-c${i}`, ns);
      await ns.addAddress('eth0', `${containerAddresses[i]}/24`);
      await ns.addRoute('default', GATEWAY);
    }

    const uplink: Internet = await createInternet(host, options.internetAddresses);
    cleanups.push(() => uplink.stop());

    // DOCKER-USER as Docker sets it up, with a rule that belongs to someone else.
    const iptables = (...args: string[]) => host.exec('iptables', args);
    const hostFirewall = options.hostFirewall ?? 'docker-user';
    if (hostFirewall === 'docker-bridges') {
      await run('ip', ['netns', 'exec', host.name, 'nft', '-f', '-'], { input: DOCKER_BRIDGES(bridge) });
    } else {
      await iptables('-N', 'DOCKER-USER');
      await iptables('-A', 'DOCKER-USER', '-j', 'RETURN');
      if (hostFirewall === 'docker-user') await iptables('-I', 'FORWARD', '-j', 'DOCKER-USER');
      await iptables('-I', 'DOCKER-USER', '-d', '203.0.113.99/32', '-m', 'comment', '--comment', 'someone-else', '-j', 'REJECT');
    }

    let unbound: Promise<Unbound> | undefined;
    const startDns = () =>
      (unbound ??= startUnbound({
        namespace: host,
        listen: GATEWAY,
        zone: ZONE,
        records: options.records ?? DEFAULT_RECORDS,
        dnstapSocket: options.dnstapSocket,
        ...(options.unboundConfig ? { serverConfig: options.unboundConfig } : {}),
      }).then((started) => {
        cleanups.push(() => started.stop());
        return started;
      }));
    let running: Unbound | undefined;
    if (options.startDns) running = await startDns();

    const from = (index = 0) => {
      const ns = containers[index];
      if (!ns) throw new Error(`the lab has no container ${index}`);
      return ns;
    };
    const request = async (address: string, port: number, opts: ConnectOptions = {}) => {
      const ms = opts.timeoutMs ?? (opts.timeoutSeconds !== undefined ? opts.timeoutSeconds * 1000 : 3000);
      const result = await execa(
        'ip',
        ['netns', 'exec', from(opts.from).name, 'curl', '-s', '--max-time', (ms / 1000).toFixed(3), `http://${address}:${port}/`],
        { reject: false },
      );
      return result.exitCode === 0 ? String(result.stdout) : undefined;
    };
    const listRules = async () => (await iptables('-S', 'DOCKER-USER')).split('\n');

    return {
      host,
      containers,
      internet: uplink.namespace,
      bridge,
      gateway: GATEWAY,
      containerAddresses,
      dnstapSocket: options.dnstapSocket,
      foreignRule: FOREIGN_RULE,
      async startDns() {
        running = await startDns();
        return running;
      },
      dns: () => running,
      async resolve(name, opts = {}) {
        const type = opts.type ?? 'A';
        const out = await from(opts.from).exec('dig', ['+short', '+time=5', '+tries=1', `@${GATEWAY}`, name, type]);
        return out.split('\n').filter((line) => (type === 'AAAA' ? /^[\da-f:]+:[\da-f:]*$/i : /^\d+\.\d+\.\d+\.\d+$/).test(line));
      },
      connect: async (address, port, opts) => (await request(address, port, opts)) !== undefined,
      request,
      hostExec: (command, args) => host.exec(command, args),
      iptables,
      listRules,
      rules: listRules,
      async counters() {
        const verbose = (await iptables('-S', 'DOCKER-USER', '-v')).split('\n');
        const counters = new Map<string, number>();
        for (const line of verbose) {
          const m = /^(.*) -c (\d+) \d+(.*)$/.exec(line);
          if (m) counters.set(`${m[1]}${m[3]}`.trim(), Number(m[2]));
        }
        return counters;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Lab suites need these programs; say which is missing and how to install it. */
export async function missingLabTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [tool, pkg] of [['unbound', 'unbound'], ['dig', 'dnsutils'], ['curl', 'curl'], ['iptables', 'iptables']] as const) {
    if ((await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode !== 0) missing.push(`${tool} (apt-get install ${pkg})`);
  }
  return missing;
}

export { run };
