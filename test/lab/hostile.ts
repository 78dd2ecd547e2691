/**
 * What a hostile container does in the firewall lab, and how a test sees the outcome:
 * forged source addresses, reachability probes decided by the kernel's own counters, and
 * the attack scripts in ./hostile/ run inside a container's namespace.
 *
 * A probe is decided by an event, never by a quiet moment: it is "reached" when the target
 * answered (TCP established, a UDP echo, an ICMP echo reply) and "dropped" when the kernel
 * counter of the rule that should drop it moved while it was unanswered. A dropped packet
 * can no longer be answered, so the verdict cannot change afterwards.
 */
import { fileURLToPath } from 'node:url';
import type { Namespace } from './netns.js';
import { startInNamespace } from './ns-process.js';

const script = (name: string) => fileURLToPath(new URL(`./hostile/${name}`, import.meta.url));
export const SCRIPTS = {
  forgeAnswers: script('forge-answers.mjs'),
  udpService: script('udp-service.mjs'),
  probe: script('probe.mjs'),
  sendQuery: script('send-query.mjs'),
  dnsFlood: script('dns-flood.mjs'),
  tcpTrickle: script('tcp-trickle.mjs'),
  knock: script('knock.mjs'),
} as const;

export type Family = 4 | 6;

/**
 * Give `ns` another address on `device` to send from, as if it were someone else's. A
 * real container needs no address for it, only CAP_NET_RAW; the lab's containers are full
 * root in their namespace, which comes to the same on the wire. Put an address of the
 * container's own network on `lo`: with arp_ignore the container then never answers ARP
 * for it on the bridge, and arp_announce keeps it out of the container's own ARP
 * requests, so the host's neighbour table keeps pointing at the real owner.
 */
export async function forgeAddress(ns: Namespace, address: string, device = 'eth0'): Promise<void> {
  const v6 = address.includes(':');
  if (!v6) {
    await ns.sysctl('net.ipv4.conf.eth0.arp_ignore', 1);
    await ns.sysctl('net.ipv4.conf.eth0.arp_announce', 2);
  }
  await ns.ip('addr', 'add', `${address}/${v6 ? 128 : 32}`, 'dev', device, ...(v6 ? ['nodad'] : []));
}

/** Packets counted by the rules of `chain` whose comment contains `comment` (`iptables-save -c`); 0 when there is no such chain. */
export async function ruleCounter(host: Namespace, family: Family, chain: string, comment: string): Promise<number> {
  const saved = await host.exec(family === 6 ? 'ip6tables-save' : 'iptables-save', ['-c', '-t', 'filter']);
  let packets = 0;
  for (const line of saved.split('\n')) {
    const match = /^\[(\d+):\d+\] -A (\S+) (.*)$/.exec(line);
    if (match && match[2] === chain && match[3]!.includes(`--comment "${comment}`)) packets += Number(match[1]);
  }
  return packets;
}

/** One of the kernel's own IPv6 statistics in `ns` (/proc/net/snmp6), e.g. Ip6InAddrErrors: packets it would not forward for their addresses. */
export async function ip6Statistic(ns: Namespace, name: string): Promise<number> {
  const match = new RegExp(`^${name}\\s+(\\d+)$`, 'm').exec(await ns.exec('cat', ['/proc/net/snmp6']));
  if (!match) throw new Error(`no ${name} in /proc/net/snmp6`);
  return Number(match[1]);
}

/** Counters of the rules that drop what the promise forbids, as the iptables and ipset backends keep them (backends.ts has each backend's). */
export const DROPS = {
  /** Forwarded traffic to an address no answer opened (DOCKER-USER). */
  egress: (host: Namespace, family: Family) => ruleCounter(host, family, 'DOCKER-USER', 'on-his-name default-drop'),
  /** A source address outside the network's subnets. */
  forged: (host: Namespace, family: Family) => ruleCounter(host, family, 'ON-HIS-NAME-SOURCES', 'on-his-name spoofed'),
  /** Anything a container sends the host itself but DNS and the ports opened on purpose. */
  host: (host: Namespace, family: Family) => ruleCounter(host, family, 'ON-HIS-NAME-INPUT', 'on-his-name host-drop'),
} as const;

export type Reach = 'reached' | 'dropped' | 'unanswered';

export interface ProbeTarget {
  protocol: 'tcp' | 'udp' | 'icmp';
  address: string;
  /** For tcp and udp (udp needs an echo service there). */
  port?: number;
  /** Send from this address of the container (a forged one); its own by default. */
  source?: string;
}

/** Kernel counters that decide a probe: the rule that should drop it, and one where it arrives (for a forged source, whose answer never comes back). */
export interface ProbeCounters {
  dropped?: () => Promise<number>;
  arrived?: () => Promise<number>;
}

/**
 * Try to reach `target` from `from`: "reached" once it answers or `arrived()` moved,
 * "dropped" once `dropped()` moved while it had not, "unanswered" if neither happened
 * within `timeoutMs`. A counter moves against what it read before the first packet.
 * Without `dropped` only an arrival ends it: use that where one is expected.
 */
export async function probe(from: Namespace, target: ProbeTarget, counters: ProbeCounters | (() => Promise<number>) = {}, timeoutMs = 8_000): Promise<Reach> {
  const { dropped, arrived } = typeof counters === 'function' ? { dropped: counters, arrived: undefined } : counters;
  const before = dropped ? await dropped() : 0;
  const arrivedBefore = arrived ? await arrived() : 0;
  const command =
    target.protocol === 'icmp'
      ? ['busybox', 'ping', ...(target.address.includes(':') ? ['-6'] : []), '-c', '1', '-W', '10', ...(target.source ? ['-I', target.source] : []), target.address]
      : [process.execPath, SCRIPTS.probe, target.protocol, target.address, String(target.port), ...(target.source ? [target.source] : [])];
  const child = startInNamespace(from, command);
  let reached = false;
  void child.exited.then((code) => (reached = code === 0));
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (reached || (arrived && (await arrived()) > arrivedBefore)) return 'reached';
      if (dropped && (await dropped()) > before) {
        // Its answer might have been on its way when the counter moved: only an answer already in counts.
        return reached ? 'reached' : 'dropped';
      }
      if (Date.now() > deadline) return 'unanswered';
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await child.stop();
  }
}

/** The host namespace's ephemeral ports narrowed to [low, high]: a forger then has only those to try. */
export async function narrowEphemeralPorts(host: Namespace, low: number, high: number): Promise<void> {
  await host.sysctl('net.ipv4.ip_local_port_range', `${low} ${high}`);
}

/** Reverse-path filtering off, as the kernel has it by default (Debian's sysctl.d and systemd turn it on; Docker hosts vary). */
export async function looseSourceRouting(host: Namespace, bridge: string): Promise<void> {
  for (const device of ['all', 'default', bridge]) await host.sysctl(`net.ipv4.conf.${device}.rp_filter`, 0);
}
