/**
 * The bridge we filter, as the firewall needs to know it: per address family, the
 * subnets its containers live in (any other source address is forged) and where on the
 * host they may ask DNS; and whether IPv6 must be filtered. Pure: Docker's view and the
 * host's view of the bridge in, one description out.
 *
 * IPv6 must be filtered when Docker gave the network IPv6, when the bridge carries a global
 * IPv6 address, or when the host forwards IPv6 at all: the kernel then forwards IPv6 from
 * the bridge whatever Docker was told, and a container with CAP_NET_RAW can send it.
 */
import type { HostPort } from '../config/config.js';
import type { BridgeNetwork } from '../docker/network.js';
import type { Layout } from '../firewall/planner.js';
import type { DnsTarget, PortSpec } from '../firewall/rules.js';
import { subnetOf, type BridgeFacts } from '../host/bridge.js';
import { AddressRanges, isLoopback, parseAddress } from '../util/address.js';
import { ConfigError } from '../util/errors.js';

export type Family = 4 | 6;

export interface FamilyView {
  subnets: string[];
  dns: DnsTarget[];
}

export interface FilteredBridge {
  bridge: string;
  4: FamilyView;
  6: FamilyView;
  /** Why IPv6 must be filtered, or undefined when nothing can carry it out. */
  ipv6Because: string | undefined;
}

const DNS_PORT = 53;

export function filteredBridge(
  bridge: string,
  network: Pick<BridgeNetwork, 'subnet' | 'subnet6' | 'gateway' | 'ipv6'> | undefined,
  facts: BridgeFacts,
  dnsListen?: HostPort | { host: 'gateway'; port: number },
): FilteredBridge {
  const view = (family: Family): FamilyView => {
    const own = facts.addresses.filter((a) => a.family === family && a.scope !== 'host' && !(family === 6 && a.scope === 'link'));
    const fromDocker = family === 4 ? network?.subnet : network?.subnet6;
    const subnets = unique([...(fromDocker ? [fromDocker] : []), ...own.map(subnetOf)]);
    const gateways = unique([...(family === 4 && network?.gateway ? [network.gateway] : []), ...own.map((a) => a.address)]);
    const port = dnsListen?.port ?? DNS_PORT;
    const dns = gateways.map((address) => ({ address, port }));
    if (dnsListen && dnsListen.host !== 'gateway' && familyOf(dnsListen.host) === family && !gateways.includes(dnsListen.host)) {
      dns.push({ address: dnsListen.host, port: dnsListen.port });
    }
    return { subnets, dns };
  };
  const global6 = facts.addresses.find((a) => a.family === 6 && a.scope === 'global');
  const ipv6Because = network?.ipv6
    ? 'the Docker network has IPv6'
    : global6
      ? `bridge ${bridge} has the IPv6 address ${global6.address}`
      : facts.ipv6Forwarding
        ? 'this host forwards IPv6 (net.ipv6.conf.all.forwarding=1)'
        : undefined;
  return { bridge, 4: view(4), 6: view(6), ipv6Because };
}

/** Who may ask the inline DNS proxy: the network's own addresses, and this host. Once per query and per answer: integer arithmetic. */
export function clientsOf(view: FilteredBridge): (address: string) => boolean {
  const subnets = new AddressRanges([...view[4].subnets, ...view[6].subnets]);
  return (address) => {
    const parsed = parseAddress(address);
    if (!parsed) return false;
    return subnets.has(parsed) || isLoopback(parsed);
  };
}

/** The firewall layout of one family on this bridge. */
export function layoutFor(view: FilteredBridge, family: Family, ports: readonly PortSpec[], hostPorts: readonly PortSpec[]): Layout {
  return { bridge: view.bridge, ports, family, subnets: view[family].subnets, dns: view[family].dns, hostPorts };
}

function familyOf(address: string): Family {
  return address.includes(':') ? 6 : 4;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** The one line for a bridge that can carry IPv6 which nothing here can filter. */
export function refuseIpv6(because: string, why: string, cause?: unknown): ConfigError {
  return new ConfigError(
    `IPv6 can leave the bridge (${because}) but ip6tables filtering cannot be installed (${why}): use --backend nftables, ` +
      `or let Docker create its ip6tables DOCKER-USER chain ("experimental": true, "ip6tables": true in /etc/docker/daemon.json), ` +
      `or turn IPv6 off for the network`,
    { cause },
  );
}
