/**
 * dnstap decode: protobuf bytes in, a plain object out, no I/O.
 * Throws a DecodeError with a precise reason for bytes that are not a dnstap message.
 *
 * The few fields used are read straight off the protobuf wire format (field numbers from
 * proto/dnstap.proto) and every other field is skipped by its wire type: a generic decoder
 * (protobufjs) built an object per message and a Buffer per bytes field, for every frame.
 * Proto2 rules: the last value of a field wins, and a Message given twice is merged.
 */
import { DecodeError } from '../util/errors.js';
import { formatAddress } from './address.js';

export interface DnstapMessage {
  /** Message.Type, e.g. 6 for CLIENT_RESPONSE. */
  type: number;
  identity?: string;
  queryAddress?: string;
  queryPort?: number;
  /** The DNS response as sent to the client; absent when the producer logs without `full`. */
  responseMessage?: Uint8Array;
}

/**
 * Where scanDnstap found the fields, as offsets into the frame (`…At` to `…End`, equal
 * when absent or empty). One object, reused by every call: read it before the next.
 */
export interface DnstapFields {
  /** Message.type. */
  type: number;
  identityAt: number;
  identityEnd: number;
  queryAddressAt: number;
  queryAddressEnd: number;
  /** Message.query_port, or -1 when absent. */
  queryPort: number;
  responseAt: number;
  responseEnd: number;
}

export function decodeDnstap(bytes: Uint8Array): DnstapMessage {
  const f = scanDnstap(bytes);
  const out: DnstapMessage = { type: f.type };
  if (f.identityEnd > f.identityAt) out.identity = Buffer.from(bytes.buffer, bytes.byteOffset + f.identityAt, f.identityEnd - f.identityAt).toString('utf8');
  if (f.queryAddressEnd > f.queryAddressAt) out.queryAddress = formatAddress(bytes, f.queryAddressAt, f.queryAddressEnd - f.queryAddressAt);
  if (f.queryPort >= 0) out.queryPort = f.queryPort;
  if (f.responseEnd > f.responseAt) out.responseMessage = bytes.subarray(f.responseAt, f.responseEnd);
  return out;
}

// Field numbers (proto/dnstap.proto).
const DNSTAP_IDENTITY = 1;
const DNSTAP_MESSAGE = 14;
const DNSTAP_TYPE = 15;
const MESSAGE_TYPE = 1;
const MESSAGE_QUERY_ADDRESS = 4;
const MESSAGE_QUERY_PORT = 6;
const MESSAGE_RESPONSE_MESSAGE = 14;

// Wire types (https://protobuf.dev/programming-guides/encoding/).
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
const WIRE_TYPE_NAMES = ['varint', '64-bit', 'length-delimited', 'group start', 'group end', '32-bit', 'unknown (6)', 'unknown (7)'];

const fields: DnstapFields = { type: 0, identityAt: 0, identityEnd: 0, queryAddressAt: 0, queryAddressEnd: 0, queryPort: -1, responseAt: 0, responseEnd: 0 };

/** The fields decide() needs, without building anything: see DnstapFields. */
export function scanDnstap(bytes: Uint8Array): Readonly<DnstapFields> {
  const f = fields;
  f.type = 0;
  f.identityAt = f.identityEnd = f.queryAddressAt = f.queryAddressEnd = f.responseAt = f.responseEnd = 0;
  f.queryPort = -1;
  const r = new WireReader(bytes);
  let hasType = false;
  let messages = 0;
  let hasMessageType = false;
  const end = bytes.length;
  while (r.at < end) {
    const key = r.varint(end, 'a field key');
    const field = key >>> 3;
    const wireType = key & 7;
    if (field === DNSTAP_MESSAGE) {
      const length = r.length(end, wireType, 'Dnstap.message (14)'); // moves past the length first
      const messageEnd = r.at + length;
      messages++;
      hasMessageType = scanMessage(r, messageEnd) || hasMessageType;
      r.at = messageEnd;
    } else if (field === DNSTAP_TYPE) {
      expectWireType(wireType, VARINT, 'Dnstap.type (15)');
      r.varint(end, 'Dnstap.type (15)');
      hasType = true;
    } else if (field === DNSTAP_IDENTITY) {
      const length = r.length(end, wireType, 'Dnstap.identity (1)');
      f.identityAt = r.at;
      f.identityEnd = r.at += length;
    } else r.skip(end, field, wireType);
  }
  if (!hasType) throw notDnstap('the required field Dnstap.type (15) is missing');
  if (messages === 0) throw new DecodeError('dnstap frame carries no Message (type MESSAGE expected)');
  if (!hasMessageType) throw notDnstap('the required field Message.type (1) is missing');
  return f;
}

/** Reads a Message's fields into `fields`, up to `end`; true when it holds a type. */
function scanMessage(r: WireReader, end: number): boolean {
  const f = fields;
  let hasType = false;
  while (r.at < end) {
    const key = r.varint(end, 'a field key in Message');
    const field = key >>> 3;
    const wireType = key & 7;
    if (field === MESSAGE_RESPONSE_MESSAGE) {
      const length = r.length(end, wireType, 'Message.response_message (14)');
      f.responseAt = r.at;
      f.responseEnd = r.at += length;
    } else if (field === MESSAGE_QUERY_ADDRESS) {
      const length = r.length(end, wireType, 'Message.query_address (4)');
      f.queryAddressAt = r.at;
      f.queryAddressEnd = r.at += length;
    } else if (field === MESSAGE_TYPE) {
      expectWireType(wireType, VARINT, 'Message.type (1)');
      f.type = r.varint(end, 'Message.type (1)') | 0; // an enum is an int32
      hasType = true;
    } else if (field === MESSAGE_QUERY_PORT) {
      expectWireType(wireType, VARINT, 'Message.query_port (6)');
      f.queryPort = r.varint(end, 'Message.query_port (6)');
    } else r.skip(end, field, wireType);
  }
  return hasType;
}

/**
 * A read position in a frame, and the protobuf wire format's ways to read what is there.
 * Errors name the field: `what` is a constant ("Dnstap.type (15)"), or "field" followed
 * by `field` for one this decoder does not know; no text is built unless it is thrown.
 */
class WireReader {
  at = 0;
  /** Set by varint(): the value did not fit in 32 bits (fine for a uint32, which keeps the low bits; not for a length). */
  overflow = false;

  constructor(private readonly bytes: Uint8Array) {}

  /** A base-128 varint's low 32 bits, unsigned (protobuf truncates a wider value read as uint32). */
  varint(end: number, what: string, field = -1, ofLength = false): number {
    // Keys, small lengths and enums are one byte: small enough for the compiler to inline.
    const at = this.at;
    const b = at < end ? this.bytes[at]! : 0x80;
    if (b < 0x80) {
      this.at = at + 1;
      this.overflow = false;
      return b;
    }
    return this.longVarint(end, what, field, ofLength);
  }

  private longVarint(end: number, what: string, field: number, ofLength: boolean): number {
    const bytes = this.bytes;
    let at = this.at;
    let value = 0;
    this.overflow = false;
    for (let shift = 0; ; shift += 7) {
      if (at >= end) throw notDnstap(`${named(what, field, ofLength)} is cut short (a varint runs past the end at byte ${at})`);
      const b = bytes[at++]!;
      if (shift < 28) value |= (b & 0x7f) << shift;
      else if (shift === 28) {
        value |= (b & 0x0f) << 28;
        if (b & 0x70) this.overflow = true;
      } else if (b & 0x7f) this.overflow = true;
      if ((b & 0x80) === 0) {
        this.at = at;
        return value >>> 0;
      }
      if (shift === 63) throw notDnstap(`${named(what, field, ofLength)} is a varint longer than 10 bytes (at byte ${at})`);
    }
  }

  /** The length of a length-delimited field whose key was just read; it must fit before `end`. */
  length(end: number, wireType: number, what: string, field = -1): number {
    expectWireType(wireType, LENGTH_DELIMITED, what, field);
    const length = this.varint(end, what, field, true);
    if (this.overflow || length > end - this.at) {
      throw notDnstap(`${named(what, field)} claims ${this.overflow ? 'more than 2^32' : length} bytes where ${end - this.at} remain`);
    }
    return length;
  }

  /** Past a field this decoder does not use. Groups (deprecated, and in no dnstap field) are refused. */
  skip(end: number, field: number, wireType: number): void {
    if (field === 0) throw notDnstap(`a field number 0 at byte ${this.at}`);
    switch (wireType) {
      case VARINT:
        this.varint(end, 'field', field);
        return;
      case LENGTH_DELIMITED: {
        const length = this.length(end, wireType, 'field', field); // moves `at` past the length itself
        this.at += length;
        return;
      }
      case FIXED64:
      case FIXED32: {
        const size = wireType === FIXED64 ? 8 : 4;
        if (size > end - this.at) throw notDnstap(`field ${field} (${size} bytes) is cut short: ${end - this.at} remain`);
        this.at += size;
        return;
      }
      default:
        throw notDnstap(`field ${field} has wire type ${WIRE_TYPE_NAMES[wireType]}, which dnstap never uses`);
    }
  }
}

function expectWireType(wireType: number, expected: number, what: string, field = -1): void {
  if (wireType !== expected) throw notDnstap(`${named(what, field)} has wire type ${WIRE_TYPE_NAMES[wireType]}, not ${WIRE_TYPE_NAMES[expected]}`);
}

function named(what: string, field: number, ofLength = false): string {
  const name = field < 0 ? what : `${what} ${field}`;
  return ofLength ? `the length of ${name}` : name;
}

function notDnstap(why: string): DecodeError {
  return new DecodeError(`not a dnstap protobuf message: ${why}`);
}
