/**
 * A firewall lab in network namespaces, shaped like a Docker host:
 *
 *   container1 (192.0.2.10) ─┐
 *   container2 (192.0.2.11) ─┤ bridge ohnbr0 (192.0.2.1, unbound + dnstap)   host namespace
 *                            │   FORWARD → DOCKER-USER (ends in RETURN, as older Docker does)
 *                            └─ uplink (198.51.100.1) ── internet (198.51.100.10-14, 203.0.113.10)
 *                                                         TCP servers on 80, 443, 8080
 *
 * Nothing has a route out of the lab. close() kills every process and removes every
 * namespace, and runs on process exit too.
 */
import { execa } from 'execa';
import { run } from './exec.js';
import { createInternet } from './internet.js';
import { Namespace, link } from './netns.js';
import { startUnbound, type Unbound, type ZoneRecord } from './unbound.js';

export const BRIDGE = 'ohnbr0';
export const GATEWAY = '192.0.2.1';
export const CONTAINERS = ['192.0.2.10', '192.0.2.11'] as const;
export { INTERNET, PORTS } from './internet.js';
export const FOREIGN_RULE = '-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable';

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
  /** Where unbound sends dnstap; the daemon under test listens there. */
  dnstapSocket: string;
  records?: readonly ZoneRecord[];
}

export interface FirewallLab {
  host: Namespace;
  containers: Namespace[];
  internet: Namespace;
  /** Start unbound (after the daemon under test listens, so no dnstap is lost). */
  startDns(): Promise<Unbound>;
  resolve(name: string, options?: { from?: number; type?: 'A' | 'AAAA' }): Promise<string[]>;
  connect(address: string, port: number, options?: { from?: number; timeoutSeconds?: number }): Promise<boolean>;
  iptables(...args: string[]): Promise<string>;
  /** `iptables -S DOCKER-USER` in the host namespace. */
  rules(): Promise<string[]>;
  /** Packet counters of DOCKER-USER rules, keyed by `iptables -S` rule text. */
  counters(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export async function createFirewallLab(options: FirewallLabOptions): Promise<FirewallLab> {
  const namespaces: Namespace[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    process.off('exit', closeSync);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    for (const ns of namespaces.splice(0)) await ns.remove();
  };
  const closeSync = () => {
    for (const ns of namespaces) execa('ip', ['netns', 'del', ns.name]).catch(() => undefined);
  };
  process.on('exit', closeSync);

  try {
    const host = await Namespace.create('ohnh');
    namespaces.push(host);
    const containers: Namespace[] = [];
    for (const _ of CONTAINERS) {
      const ns = await Namespace.create('ohnc');
      namespaces.push(ns);
      containers.push(ns);
    }

    await host.ip('link', 'add', BRIDGE, 'type', 'bridge');
    await host.ip('addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE);
    await host.ip('link', 'set', BRIDGE, 'up');
    await host.enableForwarding();
    for (const [i, ns] of containers.entries()) {
      await link(host, `veth-c${i}`, ns, 'eth0');
      await host.ip('link', 'set', `veth-c${i}`, 'master', BRIDGE);
      await ns.ip('addr', 'add', `${CONTAINERS[i]}/24`, 'dev', 'eth0');
      await ns.ip('route', 'add', 'default', 'via', GATEWAY);
    }

    const uplink = await createInternet(host);
    cleanups.push(() => uplink.stop());
    const internet = uplink.namespace;

    // DOCKER-USER as Docker sets it up, with a rule that belongs to someone else.
    await host.exec('iptables', ['-N', 'DOCKER-USER']);
    await host.exec('iptables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
    await host.exec('iptables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    await host.exec('iptables', ['-I', 'DOCKER-USER', '-d', '203.0.113.99/32', '-m', 'comment', '--comment', 'someone-else', '-j', 'REJECT']);

    const startDns = async () => {
      const unbound = await startUnbound({
        namespace: host,
        listen: GATEWAY,
        zone: 'test.',
        records: options.records ?? DEFAULT_RECORDS,
        dnstapSocket: options.dnstapSocket,
      });
      cleanups.push(() => unbound.stop());
      return unbound;
    };

    const from = (index = 0) => containers[index] ?? containers[0]!;
    return {
      host,
      containers,
      internet,
      startDns,
      async resolve(name, opts = {}) {
        const out = await from(opts.from).exec('dig', ['+short', '+time=2', '+tries=1', `@${GATEWAY}`, name, opts.type ?? 'A']);
        return out.split('\n').filter((line) => /^[\d.:a-f]+$/.test(line) && line.includes(opts.type === 'AAAA' ? ':' : '.'));
      },
      async connect(address, port, opts = {}) {
        const result = await execa(
          'ip',
          ['netns', 'exec', from(opts.from).name, 'curl', '-s', '-o', '/dev/null', '--max-time', String(opts.timeoutSeconds ?? 3), `http://${address}:${port}/`],
          { reject: false },
        );
        return result.exitCode === 0;
      },
      iptables: (...args) => host.exec('iptables', args),
      async rules() {
        return (await host.exec('iptables', ['-S', 'DOCKER-USER'])).split('\n');
      },
      async counters() {
        const verbose = (await host.exec('iptables', ['-S', 'DOCKER-USER', '-v'])).split('\n');
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
