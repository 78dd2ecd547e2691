/**
 * The answer section read in place. Every allowed answer passes through here, so owner
 * names stay wire offsets and are compared with the chain's names on the wire instead of
 * being decoded into a string per record (profiling put dns-packet's per-record name
 * decoding at a third of the time per frame). Pure; throws DecodeError for bytes that do
 * not hold the records the header announced.
 */
import { DecodeError } from '../util/errors.js';

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;

/** A resource record whose owner name and data are still where the message holds them. */
export interface WireRecord {
  type: number;
  class: number;
  ttl: number;
  /** Offset of the owner name (which may be or end in a compression pointer). */
  ownerAt: number;
  rdataAt: number;
  rdlength: number;
}

const POINTER = 0xc0;
/** RFC 1035 2.3.4: a name is at most 255 octets on the wire, length bytes and the root's included. */
const MAX_NAME_OCTETS = 255;
const DOT = 0x2e;
const BACKSLASH = 0x5c;
const DIGIT_0 = 0x30;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;

export function readRecords(buf: Buffer, offset: number, count: number): WireRecord[] {
  const records: WireRecord[] = [];
  for (let i = 0; i < count; i++) {
    const record = { type: 0, class: 0, ttl: 0, ownerAt: 0, rdataAt: 0, rdlength: 0 };
    offset = readRecord(buf, offset, record, i, count);
    records.push(record);
  }
  return records;
}

/**
 * Record `index` of `count`, at `offset`, read into `into` (callers on the hot path pass
 * one object for every record); returns the offset past it.
 */
export function readRecord(buf: Buffer, offset: number, into: WireRecord, index: number, count: number): number {
  into.ownerAt = offset;
  offset = skipName(buf, offset);
  if (offset + 10 > buf.length) throw malformed(`record ${index + 1} of ${count} is cut short`);
  const rdlength = (buf[offset + 8]! << 8) | buf[offset + 9]!;
  const rdataAt = offset + 10;
  if (rdataAt + rdlength > buf.length) throw malformed(`record ${index + 1} of ${count} claims ${rdlength} bytes of data past the end`);
  into.type = (buf[offset]! << 8) | buf[offset + 1]!;
  into.class = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  into.ttl = buf.readUInt32BE(offset + 4);
  into.rdataAt = rdataAt;
  into.rdlength = rdlength;
  return rdataAt + rdlength;
}

/** The offset just past the name at `offset` (a pointer ends a name). */
export function skipName(buf: Buffer, offset: number): number {
  for (;;) {
    if (offset >= buf.length) throw malformed('a name runs past the end');
    const length = buf[offset]!;
    if (length === 0) return offset + 1;
    if ((length & POINTER) === POINTER) {
      if (offset + 2 > buf.length) throw malformed('a compression pointer is cut short');
      return offset + 2;
    }
    if (length & POINTER) throw malformed(`unknown label type 0x${length.toString(16)}`);
    offset += 1 + length;
  }
}

/**
 * Are the wire names at `a` and `b` the same name: the same labels, byte for byte but for
 * ASCII case (RFC 4343)? Compared on the wire, so no escaping is involved: a label holding
 * a dot is one label here, never two. Two names that reach the same offset are the same
 * from there on, so an owner that points at a chain name (as servers compress them) is
 * decided at the first pointer.
 */
export function sameName(buf: Buffer, a: number, b: number): boolean {
  let limitA = a;
  let limitB = b;
  for (;;) {
    let lengthA = labelLength(buf, a);
    while (lengthA >= POINTER) {
      a = limitA = pointerTarget(buf, a, limitA);
      lengthA = labelLength(buf, a);
    }
    let lengthB = labelLength(buf, b);
    while (lengthB >= POINTER) {
      b = limitB = pointerTarget(buf, b, limitB);
      lengthB = labelLength(buf, b);
    }
    if (a === b) return true;
    if (lengthA !== lengthB) return false;
    if (lengthA === 0) return true;
    if (a + 1 + lengthA > buf.length || b + 1 + lengthB > buf.length) throw malformed('a label runs past the end');
    for (let i = 1; i <= lengthA; i++) {
      const x = buf[a + i]!;
      const y = buf[b + i]!;
      if (x !== y && !((x | 0x20) === (y | 0x20) && isLetter(x | 0x20))) return false;
    }
    a += 1 + lengthA;
    b += 1 + lengthB;
  }
}

/** The length byte at `offset`: a label's length, 0 for the root, 0xc0 or more for a pointer. */
function labelLength(buf: Buffer, offset: number): number {
  if (offset >= buf.length) throw malformed('a name runs past the end');
  const length = buf[offset]!;
  if ((length & POINTER) !== 0 && (length & POINTER) !== POINTER) throw malformed(`unknown label type 0x${length.toString(16)}`);
  return length;
}

function isLetter(lower: number): boolean {
  return lower >= 0x61 && lower <= 0x7a;
}

/** The name at `offset`, normalised (see readNormalisedName). */
export function readName(buf: Buffer, offset: number): string {
  const length = writeName(buf, offset);
  return length === 0 ? '.' : scratch.toString('latin1', 0, length);
}

/**
 * The name at `offset` and the offset just past it (a pointer ends a name), in the form
 * every name off the wire takes here: presentation form, ASCII letters in lower case, a
 * trailing dot, and RFC 1035 escapes for the bytes that would otherwise be ambiguous or
 * unprintable: `\.` for a dot inside a label, `\\` for a backslash, `\DDD` (decimal) for
 * a byte below 0x21 or above 0x7e. So two different wire names never give the same
 * string: the single label "allowed.test" is `allowed\.test.`, never `allowed.test.`.
 * Patterns cannot hold a backslash, so no exact pattern equals such a name, and wildcards
 * refuse a name with one (pattern.ts).
 *
 * Compression pointers must point to prior data (RFC 1035 4.1.4), as dns-packet required:
 * that rules out loops. Throws DecodeError for a name that runs past the end, a bad label
 * type or a name longer than 255 octets.
 */
export function readNormalisedName(buf: Buffer, offset: number): { name: string; next: number } {
  const length = writeName(buf, offset);
  return { name: length === 0 ? '.' : scratch.toString('latin1', 0, length), next: nameEnd };
}

/** Room for the longest name (255 octets) with every byte escaped (4 characters each). */
const scratch = Buffer.allocUnsafe(4 * 255);
/** Set by writeName: the offset just past the name it read. */
let nameEnd = 0;

/** Writes the name at `start` into `scratch`, returns its length and sets `nameEnd`. */
function writeName(buf: Buffer, start: number): number {
  let offset = start;
  let limit = start;
  let end = -1;
  let octets = 1; // the root label's length byte
  let out = 0;
  for (;;) {
    if (offset >= buf.length) throw malformed('a name runs past the end');
    const length = buf[offset]!;
    if (length === 0) break;
    if ((length & POINTER) === POINTER) {
      if (end < 0) end = offset + 2;
      offset = limit = pointerTarget(buf, offset, limit);
      continue;
    }
    if (length & POINTER) throw malformed(`unknown label type 0x${length.toString(16)}`);
    if (offset + 1 + length > buf.length) throw malformed('a label runs past the end');
    octets += 1 + length;
    if (octets > MAX_NAME_OCTETS) throw malformed(`a name is longer than ${MAX_NAME_OCTETS} octets`);
    for (let i = offset + 1; i <= offset + length; i++) {
      const c = buf[i]!;
      if (c >= UPPER_A && c <= UPPER_Z) scratch[out++] = c + 0x20;
      else if (!isEscaped(c)) scratch[out++] = c;
      else if (c === DOT || c === BACKSLASH) {
        scratch[out++] = BACKSLASH;
        scratch[out++] = c;
      } else {
        scratch[out++] = BACKSLASH;
        scratch[out++] = DIGIT_0 + Math.floor(c / 100);
        scratch[out++] = DIGIT_0 + (Math.floor(c / 10) % 10);
        scratch[out++] = DIGIT_0 + (c % 10);
      }
    }
    scratch[out++] = DOT;
    offset += 1 + length;
  }
  nameEnd = end < 0 ? offset + 1 : end;
  return out;
}

/** A byte that readName writes as an escape: a dot or backslash, or one outside printable ASCII. */
function isEscaped(c: number): boolean {
  return c === DOT || c === BACKSLASH || c <= 0x20 || c >= 0x7f;
}

/** Where the compression pointer at `offset` leads, which must be before `limit` (the start of the labels it ends). */
function pointerTarget(buf: Buffer, offset: number, limit: number): number {
  if (offset + 2 > buf.length) throw malformed('a compression pointer is cut short');
  const target = ((buf[offset]! & 0x3f) << 8) | buf[offset + 1]!;
  if (target >= limit) throw malformed(`a compression pointer leads to ${target}, not before ${limit}: pointers loop or point forward`);
  return target;
}

function malformed(why: string): DecodeError {
  return new DecodeError(`malformed DNS message: ${why}`);
}
