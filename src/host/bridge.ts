/**
 * What the host itself says about a bridge: its addresses (the gateway, and with them the
 * subnets containers live in) and whether IPv6 can leave through it at all. Docker's view
 * (docker/network.ts) names the network's subnets; for a plain bridge (--interface) this
 * is the only view, and for IPv6 it is the one that counts: the kernel forwards IPv6 from
 * any interface once forwarding is on, whether or not Docker was told about IPv6.
 *
 *   `ip -j addr show dev BR` ─parseAddresses (pure)─▶ addresses, subnets
 *   /proc/sys/net/ipv6/conf/all/forwarding ─────────▶ ipv6Forwarding
 */
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { canonicalRange } from '../util/address.js';

export interface BridgeAddress {
  family: 4 | 6;
  address: string;
  prefix: number;
  /** global, link, host… as `ip` says. */
  scope: string;
}

export interface BridgeFacts {
  /** False when no interface of that name exists (yet). */
  exists: boolean;
  addresses: BridgeAddress[];
  /** The host forwards IPv6: a container can send IPv6 out unless IPv6 is filtered. */
  ipv6Forwarding: boolean;
}

/** Reads the facts of one bridge; injectable so that tests need no real interface. */
export type BridgeReader = (bridge: string) => Promise<BridgeFacts>;

export const readBridge: BridgeReader = async (bridge) => {
  const [shown, forwarding] = await Promise.all([
    execa('ip', ['-j', 'addr', 'show', 'dev', bridge], { reject: false }),
    readFile('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8').catch(() => '0'),
  ]);
  const exists = shown.exitCode === 0;
  return { exists, addresses: exists ? parseAddresses(String(shown.stdout)) : [], ipv6Forwarding: forwarding.trim() === '1' };
};

/** `ip -j addr show` output → the addresses on it; anything unreadable is left out. */
export function parseAddresses(json: string): BridgeAddress[] {
  let links: unknown;
  try {
    links = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(links)) return [];
  const addresses: BridgeAddress[] = [];
  for (const link of links as Array<{ addr_info?: unknown }>) {
    if (!Array.isArray(link.addr_info)) continue;
    for (const info of link.addr_info as Array<Record<string, unknown>>) {
      const family = info.family === 'inet' ? 4 : info.family === 'inet6' ? 6 : undefined;
      if (family === undefined || typeof info.local !== 'string' || typeof info.prefixlen !== 'number') continue;
      addresses.push({ family, address: info.local, prefix: info.prefixlen, scope: typeof info.scope === 'string' ? info.scope : 'global' });
    }
  }
  return addresses;
}

/** The subnet an address on the bridge stands for, e.g. 192.0.2.1/24 → 192.0.2.0/24. */
export function subnetOf({ address, prefix }: Pick<BridgeAddress, 'address' | 'prefix'>): string {
  return canonicalRange(`${address}/${prefix}`) ?? `${address}/${prefix}`;
}
