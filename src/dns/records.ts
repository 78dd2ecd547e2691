/**
 * The answer section read in place. Every allowed answer passes through here, so owner
 * names stay wire offsets and are compared with the chain's names byte by byte instead of
 * being decoded into a string per record (profiling put dns-packet's per-record name
 * decoding at a third of the time per frame). Pure; throws DecodeError for bytes that do
 * not hold the records the header announced.
 */
import dnsPacket from 'dns-packet';
import { DecodeError } from '../util/errors.js';
import { normaliseName } from './name.js';

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
/** More jumps than any honest message needs: a name is at most 127 labels. */
const MAX_POINTER_JUMPS = 127;
const DOT = 0x2e;

export function readRecords(buf: Buffer, offset: number, count: number): WireRecord[] {
  const records: WireRecord[] = [];
  for (let i = 0; i < count; i++) {
    const ownerAt = offset;
    offset = skipName(buf, offset);
    if (offset + 10 > buf.length) throw malformed(`record ${i + 1} of ${count} is cut short`);
    const rdlength = buf.readUInt16BE(offset + 8);
    const rdataAt = offset + 10;
    if (rdataAt + rdlength > buf.length) throw malformed(`record ${i + 1} of ${count} claims ${rdlength} bytes of data past the end`);
    records.push({ type: buf.readUInt16BE(offset), class: buf.readUInt16BE(offset + 2), ttl: buf.readUInt32BE(offset + 4), ownerAt, rdataAt, rdlength });
    offset = rdataAt + rdlength;
  }
  return records;
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
 * Does the wire name at `offset` equal `normalised` (ASCII lower case, trailing dot)? The
 * same answer as normaliseName(dns-packet's decoding) === normalised, without the string.
 */
export function nameEquals(buf: Buffer, start: number, normalised: string): boolean {
  let offset = start;
  let at = 0;
  let jumps = 0;
  for (;;) {
    if (offset >= buf.length) throw malformed('a name runs past the end');
    const length = buf[offset]!;
    if (length === 0) return at === normalised.length || (at === 0 && normalised === '.');
    if ((length & POINTER) === POINTER) {
      if (offset + 2 > buf.length) throw malformed('a compression pointer is cut short');
      if (++jumps > MAX_POINTER_JUMPS) throw malformed('compression pointers loop');
      offset = ((length & 0x3f) << 8) | buf[offset + 1]!;
      continue;
    }
    if (length & POINTER) throw malformed(`unknown label type 0x${length.toString(16)}`);
    if (offset + 1 + length > buf.length) throw malformed('a label runs past the end');
    for (let i = offset + 1; i <= offset + length; i++) {
      let c = buf[i]!;
      // Non-ASCII bytes decode to other characters (UTF-8): let the string comparison judge.
      if (c >= 0x80) return normaliseName(decodeName(buf, start)) === normalised;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c !== normalised.charCodeAt(at++)) return false;
    }
    if (normalised.charCodeAt(at++) !== DOT) return false;
    offset += 1 + length;
  }
}

/** Room for the longest name (255 bytes), reused: the question name is built here once per answer. */
const scratch = Buffer.allocUnsafe(256);

/**
 * The name at `offset`, normalised (ASCII lower case, trailing dot), and the offset past
 * it: the same as normaliseName(decodeName(…)), read in place for the usual all-ASCII,
 * pointer-free question name, through dns-packet for anything else.
 */
export function readNormalisedName(buf: Buffer, offset: number): { name: string; next: number } {
  let at = offset;
  let length = 0;
  for (;;) {
    if (at >= buf.length) throw malformed('a name runs past the end');
    const labelLength = buf[at]!;
    if (labelLength === 0) break;
    if (labelLength & POINTER) return slowNormalisedName(buf, offset);
    if (at + 1 + labelLength > buf.length) throw malformed('a label runs past the end');
    // dns-packet's bound, so that both paths accept the same names.
    if (length + labelLength + 1 > 254) throw malformed('Cannot decode name (name too long)');
    for (let i = at + 1; i <= at + labelLength; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return slowNormalisedName(buf, offset);
      scratch[length++] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    }
    scratch[length++] = DOT;
    at += 1 + labelLength;
  }
  return { name: length === 0 ? '.' : scratch.toString('latin1', 0, length), next: at + 1 };
}

function slowNormalisedName(buf: Buffer, offset: number): { name: string; next: number } {
  return { name: normaliseName(decodeName(buf, offset)), next: skipName(buf, offset) };
}

/** The name at `offset`, decoded (for CNAME targets, which become names on the chain). */
export function decodeName(buf: Buffer, offset: number): string {
  try {
    return (dnsPacket as unknown as { name: { decode(buf: Buffer, offset: number): string } }).name.decode(buf, offset);
  } catch (err) {
    throw malformed((err as Error).message);
  }
}

function malformed(why: string): DecodeError {
  return new DecodeError(`malformed DNS message: ${why}`);
}
