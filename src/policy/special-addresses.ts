/**
 * Addresses nobody should open by accident. An allowed name that resolves to loopback,
 * the cloud metadata address or a private range is more likely a mistake or an attack
 * (DNS rebinding) than a wish, so such addresses are refused, with a warning, unless an
 * --allow-cidr range covers them. Both families; node's BlockList does the arithmetic and
 * judges an IPv4-mapped IPv6 address (::ffff:a.b.c.d) by the IPv4 address inside it.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../util/errors.js';

interface Range {
  cidr: string;
  list: BlockList;
  /** For IPv4 ranges: the same test in integer arithmetic, since BlockList costs microseconds a call. */
  v4?: { base: number; mask: number };
}

/** IANA's special-purpose ranges that are reachable and dangerous (documentation ranges are neither). */
const SPECIAL: ReadonlyArray<[cidr: string, why: string]> = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata lives at 169.254.169.254)'],
  ['172.16.0.0/12', 'private (Docker networks live here)'],
  ['192.168.0.0/16', 'private'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved or broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['fc00::/7', 'unique local (private)'],
  ['ff00::/8', 'multicast'],
  // NAT64 reaches IPv4 through a translator, past the IPv4 rules: open it on purpose only.
  ['64:ff9b::/96', 'NAT64 (reaches IPv4 through a translator)'],
  ['64:ff9b:1::/48', 'NAT64 (reaches IPv4 through a translator)'],
];

type SpecialRange = Range & { why: string };

export class AddressGuard {
  private readonly special: readonly SpecialRange[];
  private readonly allowed: readonly Range[];
  /** The IPv4 ranges of each kind that hold addresses with a given first octet, in order: most octets have none. */
  private readonly specialV4ByOctet: ReadonlyArray<readonly SpecialRange[]>;
  private readonly allowedV4ByOctet: ReadonlyArray<readonly Range[]>;
  /** Every range of a kind in one list, so that an ordinary IPv6 address costs one check each. */
  private readonly anySpecial = new BlockList();
  private readonly anyAllowed = new BlockList();

  /** `allowCidrs` open ranges on purpose; `networks` are the Docker networks' own subnets, always refused. */
  constructor(allowCidrs: readonly string[] = [], networks: readonly string[] = []) {
    this.allowed = allowCidrs.map((cidr) => parseCidr(cidr, '--allow-cidr'));
    this.special = [
      ...networks.map((cidr) => ({ ...parseCidr(cidr, 'network subnet'), why: "the Docker network's own subnet" })),
      ...SPECIAL.map(([cidr, why]) => ({ ...parseCidr(cidr, 'built-in range'), why })),
    ];
    for (const range of this.allowed) addRange(this.anyAllowed, range.cidr);
    for (const range of this.special) addRange(this.anySpecial, range.cidr);
    this.specialV4ByOctet = byFirstOctet(this.special);
    this.allowedV4ByOctet = byFirstOctet(this.allowed);
  }

  /** Why this address must not be opened, or undefined when it may. */
  refusal(address: string): string | undefined {
    const v4 = strictIPv4Number(address);
    if (v4 !== undefined) return this.refusalV4(v4);
    if (isIP(address) !== 6) return undefined;
    if (this.anyAllowed.check(address, 'ipv6') || !this.anySpecial.check(address, 'ipv6')) return undefined;
    const range = this.special.find((r) => r.list.check(address, 'ipv6'));
    return range ? `${range.cidr} is ${range.why}` : undefined;
  }

  /** Once per allowed IPv4 answer: integer tests only, and none for an address outside every special range's first octet. */
  private refusalV4(value: number): string | undefined {
    const octet = value >>> 24;
    const specials = this.specialV4ByOctet[octet]!;
    if (specials.length === 0) return undefined;
    for (const range of this.allowedV4ByOctet[octet]!) if (inV4(range.v4!, value)) return undefined;
    for (const range of specials) if (inV4(range.v4!, value)) return `${range.cidr} is ${range.why}`;
    return undefined;
  }
}

const NO_RANGES: readonly never[] = [];

/** For each first octet (0-255), the IPv4 ranges among `ranges` that reach it, in the order given. */
function byFirstOctet<T extends Range>(ranges: readonly T[]): ReadonlyArray<readonly T[]> {
  const table: T[][] = Array.from({ length: 256 }, () => []);
  for (const range of ranges) {
    if (!range.v4) continue;
    const first = range.v4.base >>> 24;
    const last = (first | (~range.v4.mask >>> 24)) & 0xff;
    for (let octet = first; octet <= last; octet++) table[octet]!.push(range);
  }
  return table.map((list) => (list.length === 0 ? NO_RANGES : list));
}

function addRange(list: BlockList, cidr: string): void {
  const [address = '', prefix = ''] = cidr.split('/');
  list.addSubnet(address, Number(prefix), isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

function inV4(range: { base: number; mask: number }, value: number): boolean {
  return ((value & range.mask) >>> 0) === range.base;
}

/**
 * A dotted quad (four decimal octets, 0-255, no leading zeros: what isIP accepts) as an
 * unsigned 32-bit integer, or undefined for anything else. Once per allowed address, so
 * it parses by hand instead of through isIP's regular expression and then again.
 */
function strictIPv4Number(address: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = ((value << 8) | octet) >>> 0;
      octet = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return ((value << 8) | octet) >>> 0;
}

/** A dotted quad already checked by isIP, as an unsigned 32-bit integer. */
function ipv4Number(address: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 0x2e) {
      value = ((value << 8) | octet) >>> 0;
      octet = 0;
    } else octet = octet * 10 + (c - 0x30);
  }
  return ((value << 8) | octet) >>> 0;
}

export function parseCidr(text: string, source: string): Range {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  const bits = slash < 0 ? String(family === 6 ? 128 : 32) : text.slice(slash + 1);
  const prefix = Number(bits);
  if (family === 0 || !/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) {
    throw new ConfigError(`${source} "${text}" is not an IPv4 or IPv6 range such as 198.51.100.0/24 or 2001:db8::/32`);
  }
  const list = new BlockList();
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  if (family === 6) return { cidr: `${address}/${prefix}`, list };
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { cidr: `${address}/${prefix}`, list, v4: { base: (ipv4Number(address) & mask) >>> 0, mask } };
}
