/**
 * Addresses nobody should open by accident. An allowed name that resolves to loopback,
 * the cloud metadata address or a private range is more likely a mistake or an attack
 * (DNS rebinding) than a wish, so such addresses are refused, with a warning, unless an
 * --allow-cidr range covers them.
 */
import { isIPv4 } from 'node:net';
import { ConfigError } from '../errors.js';

interface Range {
  cidr: string;
  base: number;
  mask: number;
}

/** IANA's special-purpose IPv4 ranges that are reachable and dangerous (documentation ranges are neither). */
const SPECIAL_IPV4: ReadonlyArray<[cidr: string, why: string]> = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata lives at 169.254.169.254)'],
  ['172.16.0.0/12', 'private (Docker networks live here)'],
  ['192.168.0.0/16', 'private'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved or broadcast'],
];

export class AddressGuard {
  private readonly special: ReadonlyArray<Range & { why: string }>;
  private readonly allowed: readonly Range[];

  /** `allowCidrs` open ranges on purpose; `networks` are the Docker networks' own subnets, always refused. */
  constructor(allowCidrs: readonly string[] = [], networks: readonly string[] = []) {
    this.allowed = allowCidrs.map((cidr) => parseCidr(cidr, '--allow-cidr'));
    this.special = [
      ...networks.map((cidr) => ({ ...parseCidr(cidr, 'network subnet'), why: "the Docker network's own subnet" })),
      ...SPECIAL_IPV4.map(([cidr, why]) => ({ ...parseCidr(cidr, 'built-in range'), why })),
    ];
  }

  /** Why this address must not be opened, or undefined when it may. */
  refusal(address: string): string | undefined {
    if (!isIPv4(address)) return undefined;
    const value = toNumber(address);
    if (this.allowed.some((r) => contains(r, value))) return undefined;
    const range = this.special.find((r) => contains(r, value));
    return range ? `${range.cidr} is ${range.why}` : undefined;
  }
}

export function parseCidr(text: string, source: string): Range {
  const [address = '', bits = '32'] = text.split('/');
  const prefix = Number(bits);
  if (!isIPv4(address) || !/^\d{1,2}$/.test(bits) || prefix > 32) {
    throw new ConfigError(`${source} "${text}" is not an IPv4 range such as 198.51.100.0/24`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { cidr: `${address}/${prefix}`, base: (toNumber(address) & mask) >>> 0, mask };
}

function contains(range: Range, value: number): boolean {
  return ((value & range.mask) >>> 0) === range.base;
}

function toNumber(address: string): number {
  return address.split('.').reduce((n, octet) => ((n << 8) | Number(octet)) >>> 0, 0);
}
