/**
 * Addresses nobody should open by accident. An allowed name that resolves to loopback,
 * the cloud metadata address or a private range is more likely a mistake or an attack
 * (DNS rebinding) than a wish, so such addresses are refused, with a warning, unless an
 * --allow-cidr range covers them. Both families, in integer arithmetic (util/address.ts);
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged by the IPv4 address inside it.
 */
import { isIP } from 'node:net';
import { AddressRanges, parseAddress, parseRange } from '../util/address.js';
import { ConfigError } from '../util/errors.js';

interface Range {
  cidr: string;
  /** For IPv4 ranges: base and mask, for the table by first octet. */
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
  /** The IPv6 ranges of each kind, narrowest first. */
  private readonly specialV6: AddressRanges<string>;
  private readonly allowedV6: AddressRanges;

  /** `allowCidrs` open ranges on purpose; `networks` are the Docker networks' own subnets, always refused. */
  constructor(allowCidrs: readonly string[] = [], networks: readonly string[] = []) {
    this.allowed = allowCidrs.map((cidr) => parseCidr(cidr, '--allow-cidr'));
    this.special = [
      ...networks.map((cidr) => ({ ...parseCidr(cidr, 'network subnet'), why: "the Docker network's own subnet" })),
      ...SPECIAL.map(([cidr, why]) => ({ ...parseCidr(cidr, 'built-in range'), why })),
    ];
    this.specialV4ByOctet = byFirstOctet(this.special);
    this.allowedV4ByOctet = byFirstOctet(this.allowed);
    this.specialV6 = new AddressRanges(this.special.filter((r) => !r.v4).map((r) => ({ cidr: r.cidr, value: `${r.cidr} is ${r.why}` })));
    this.allowedV6 = new AddressRanges(this.allowed.filter((r) => !r.v4).map((r) => r.cidr));
  }

  /** Why this address must not be opened, or undefined when it may. */
  refusal(address: string): string | undefined {
    const parsed = parseAddress(address);
    if (!parsed) return undefined;
    if (parsed.family === 4) return this.refusalV4(parsed.value);
    if (this.allowedV6.has(parsed)) return undefined;
    return this.specialV6.find(parsed)?.value;
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

function inV4(range: { base: number; mask: number }, value: number): boolean {
  return ((value & range.mask) >>> 0) === range.base;
}

export function parseCidr(text: string, source: string): Range {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  const range = family === 0 ? undefined : parseRange(text);
  if (!range) throw new ConfigError(`${source} "${text}" is not an IPv4 or IPv6 range such as 198.51.100.0/24 or 2001:db8::/32`);
  const cidr = `${address}/${range.bits}`;
  if (range.family === 6) return { cidr };
  const mask = range.bits === 0 ? 0 : (0xffffffff << (32 - range.bits)) >>> 0;
  return { cidr, v4: { base: ((parseAddress(address) as { value: number }).value & mask) >>> 0, mask } };
}
