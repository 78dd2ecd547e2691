/**
 * IP addresses and ranges in integer arithmetic. Pure.
 *
 * Node's BlockList costs microseconds a check (a call into C++ that parses the text again),
 * which on the path of every answer (whose policy? which addresses are special?) and every
 * query (is it a client?) is more than the rest of the decision. Here an address is parsed
 * once, and each range is a mask and a compare: tens of nanoseconds.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, or ::ffff:xxxx:xxxx) is the IPv4 address
 * inside it, as the kernel treats it.
 */

export type Address = { family: 4; value: number } | { family: 6; words: readonly [number, number, number, number] };

/** Dotted quad, four decimal octets without leading zeros; undefined for anything else. */
export function parseIPv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
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

/** An IPv6 address as four 32-bit words; `::`, and a dotted quad at the end, as RFC 4291 writes them. No zone. */
export function parseIPv6(text: string): [number, number, number, number] | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return [((all[0]! << 16) | all[1]!) >>> 0, ((all[2]! << 16) | all[3]!) >>> 0, ((all[4]! << 16) | all[5]!) >>> 0, ((all[6]! << 16) | all[7]!) >>> 0];
}

/** Either family; an IPv4-mapped IPv6 address as its IPv4 address. */
export function parseAddress(text: string): Address | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const words = parseIPv6(text);
  if (!words) return undefined;
  if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { family: 4, value: words[3] };
  return { family: 6, words };
}

/** 127.0.0.0/8 and ::1 (an IPv4-mapped loopback is parsed as IPv4): only this host reaches them. */
export function isLoopback(a: Address): boolean {
  return a.family === 4 ? a.value >>> 24 === 127 : a.words[0] === 0 && a.words[1] === 0 && a.words[2] === 0 && a.words[3] === 1;
}

/** A range: its family, prefix length and the test. */
export interface Range {
  cidr: string;
  family: 4 | 6;
  bits: number;
  has(address: Address): boolean;
}

/** "a.b.c.d/n", "x::/n", or a bare address (its own /32 or /128); undefined when unreadable. Host bits are ignored. */
export function parseRange(cidr: string): Range | undefined {
  const [text = '', bitsText, extra] = cidr.split('/');
  if (extra !== undefined) return undefined;
  const v4 = parseIPv4(text);
  if (v4 !== undefined) {
    const bits = bitsText === undefined ? 32 : strictBits(bitsText, 32);
    if (bits === undefined) return undefined;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const base = (v4 & mask) >>> 0;
    return { cidr, family: 4, bits, has: (a) => a.family === 4 && ((a.value & mask) >>> 0) === base };
  }
  const words = parseIPv6(text);
  if (!words) return undefined;
  const bits = bitsText === undefined ? 128 : strictBits(bitsText, 128);
  if (bits === undefined) return undefined;
  const masks = [0, 1, 2, 3].map((i) => {
    const left = Math.min(32, Math.max(0, bits - 32 * i));
    return left === 0 ? 0 : (0xffffffff << (32 - left)) >>> 0;
  });
  const base = words.map((w, i) => (w & masks[i]!) >>> 0);
  // A mapped range (::ffff:0:0/96 and below) holds IPv4 addresses, which parseAddress gives as IPv4.
  const mapped = bits >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
  if (mapped) {
    const mask = bits === 96 ? 0 : (0xffffffff << (128 - bits)) >>> 0;
    const v4base = (words[3] & mask) >>> 0;
    return { cidr, family: 6, bits, has: (a) => a.family === 4 && ((a.value & mask) >>> 0) === v4base };
  }
  return {
    cidr,
    family: 6,
    bits,
    has: (a) =>
      a.family === 6 &&
      ((a.words[0] & masks[0]!) >>> 0) === base[0] &&
      ((a.words[1] & masks[1]!) >>> 0) === base[1] &&
      ((a.words[2] & masks[2]!) >>> 0) === base[2] &&
      ((a.words[3] & masks[3]!) >>> 0) === base[3],
  };
}

/**
 * A range as the kernel tools print it back: the network address (host bits cleared), IPv6
 * in RFC 5952's shortest form, the prefix; a bare address stays bare. Undefined when unreadable.
 */
export function canonicalRange(cidr: string): string | undefined {
  const range = parseRange(cidr);
  if (!range) return undefined;
  const [text = '', bits] = cidr.split('/');
  const bare = bits === undefined;
  const v4 = parseIPv4(text);
  if (v4 !== undefined) {
    const mask = range.bits === 0 ? 0 : (0xffffffff << (32 - range.bits)) >>> 0;
    const base = (v4 & mask) >>> 0;
    const dotted = [base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255].join('.');
    return bare ? dotted : `${dotted}/${range.bits}`;
  }
  const words = parseIPv6(text)!;
  const groups = words.flatMap((w, i) => {
    const left = Math.min(32, Math.max(0, range.bits - 32 * i));
    const masked = left === 0 ? 0 : (w & ((0xffffffff << (32 - left)) >>> 0)) >>> 0;
    return [masked >>> 16, masked & 0xffff];
  });
  const text6 = formatIPv6(groups);
  return bare ? text6 : `${text6}/${range.bits}`;
}

/** Eight 16-bit groups in RFC 5952's form: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
function formatIPv6(groups: readonly number[]): string {
  let best = { at: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { at: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.length).join(':')}`;
}

/** Ranges, tested narrowest first: which holds an address, and whether any does. */
export class AddressRanges<T = undefined> {
  private readonly ranges: Array<{ range: Range; value: T }>;

  /** Throws on an unreadable range: the caller checked its input (config parsers do). */
  constructor(entries: ReadonlyArray<{ cidr: string; value: T }> | readonly string[]) {
    this.ranges = entries
      .map((e) => (typeof e === 'string' ? { cidr: e, value: undefined as T } : e))
      .map(({ cidr, value }) => {
        const range = parseRange(cidr);
        if (!range) throw new Error(`not an address range: ${cidr}`);
        return { range, value };
      })
      .sort((a, b) => b.range.bits - a.range.bits);
  }

  get size(): number {
    return this.ranges.length;
  }

  /** The narrowest range holding `address`, or undefined (also for an unreadable address). */
  find(address: string | Address): { range: Range; value: T } | undefined {
    const parsed = typeof address === 'string' ? parseAddress(address) : address;
    if (!parsed) return undefined;
    for (const entry of this.ranges) if (entry.range.has(parsed)) return entry;
    return undefined;
  }

  has(address: string | Address): boolean {
    return this.find(address) !== undefined;
  }
}

function strictBits(text: string, max: number): number | undefined {
  if (!/^\d{1,3}$/.test(text)) return undefined;
  const bits = Number(text);
  return bits <= max ? bits : undefined;
}
