/**
 * The few things the inline DNS proxy must know about a message, and the replies it makes
 * itself. Pure: bytes in, bytes out. Queries are passed to the upstream untouched (their
 * EDNS options, DO bit and cookies included); the proxy only reads the header, the one
 * question and the EDNS payload size, and writes error replies that a stub resolver
 * understands: FORMERR, NOTIMP, SERVFAIL after an upstream timeout, NXDOMAIN for a denied
 * name with --deny-nxdomain, and a truncated reply (TC) that sends the client to TCP.
 */
import { DecodeError } from '../util/errors.js';
import { readNormalisedName, readRecords } from '../dns/records.js';

export const HEADER_BYTES = 12;
/** A client without EDNS takes at most this many bytes over UDP (RFC 1035). */
export const CLASSIC_UDP_LIMIT = 512;
/** What we advertise in our own replies: the DNS flag day 2020 value. */
export const OUR_UDP_SIZE = 1232;

const QR = 0x8000;
const OPCODE_MASK = 0x7800;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const TYPE_OPT = 41;

export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type RcodeName = keyof typeof Rcode;

export interface Query {
  id: number;
  /** The header's flags word, as the client sent it. */
  flags: number;
  /** The question section's bytes (name, type, class), copied into replies we make. */
  question: Buffer;
  /** The question name, normalised as every name off the wire (records.ts readNormalisedName: escapes included). */
  name: string;
  /** The largest UDP reply the client accepts: its EDNS payload size, else 512. */
  udpLimit: number;
  edns: boolean;
}

/** A query to forward, or why not, with the reply owed to the client (none for a message not worth one). */
export type QueryCheck = { ok: true; query: Query } | { ok: false; why: string; reply?: Buffer };

export function checkQuery(bytes: Uint8Array): QueryCheck {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Too short to carry an id, or a response: answering either could only feed a loop or a reflection.
  if (buf.length < HEADER_BYTES) return { ok: false, why: `${buf.length} bytes, shorter than a DNS header` };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & QR) return { ok: false, why: 'a response where a query was expected' };
  const header = { id, flags, question: Buffer.alloc(0), name: '', udpLimit: CLASSIC_UDP_LIMIT, edns: false };
  if ((flags & OPCODE_MASK) !== 0) {
    return { ok: false, why: `opcode ${(flags & OPCODE_MASK) >> 11} is not QUERY`, reply: reply(header, 'NOTIMP') };
  }
  const questions = buf.readUInt16BE(4);
  if (questions !== 1) return { ok: false, why: `${questions} questions (one expected)`, reply: reply(header, 'FORMERR') };
  try {
    const { name, next } = readNormalisedName(buf, HEADER_BYTES);
    const questionEnd = next + 4;
    if (questionEnd > buf.length) throw new DecodeError('malformed DNS message: the question is cut short');
    const question = Buffer.from(buf.subarray(HEADER_BYTES, questionEnd));
    const opt = findOpt(buf, questionEnd);
    const query: Query = { id, flags, question, name, udpLimit: opt ? Math.max(CLASSIC_UDP_LIMIT, opt.class) : CLASSIC_UDP_LIMIT, edns: opt !== undefined };
    return { ok: true, query };
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return { ok: false, why: err.message, reply: reply(header, 'FORMERR') };
  }
}

/** The EDNS OPT record among the query's other records, if any. */
function findOpt(buf: Buffer, offset: number) {
  const others = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  return readRecords(buf, offset, others).find((record) => record.type === TYPE_OPT);
}

/**
 * A reply made here: the query's id, opcode and RD, the question, and an OPT record when
 * the client spoke EDNS (a client that did must get one back, RFC 6891).
 */
export function reply(query: Query, rcode: RcodeName): Buffer {
  const opt = query.edns ? optRecord() : Buffer.alloc(0);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE(QR | (query.flags & (OPCODE_MASK | RD)) | RA | Rcode[rcode], 2);
  header.writeUInt16BE(query.question.length > 0 ? 1 : 0, 4);
  header.writeUInt16BE(query.edns ? 1 : 0, 10);
  return Buffer.concat([header, query.question, opt]);
}

/** Root owner, type OPT, our payload size as its class, no extended rcode, no options. */
function optRecord(): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(TYPE_OPT, 1);
  opt.writeUInt16BE(OUR_UDP_SIZE, 3);
  return opt;
}

/**
 * What goes back over UDP: the reply as is when it fits the client's limit, else the
 * header and question with TC set, so the client asks again over TCP (RFC 1035 4.2.1).
 */
export function fitForUdp(response: Buffer, query: Query): Buffer {
  if (response.length <= query.udpLimit) return response;
  const truncated = reply(query, 'NOERROR');
  truncated.writeUInt16BE((response.readUInt16BE(2) & ~AA) | TC, 2);
  return truncated;
}

export function isTruncated(response: Buffer): boolean {
  return response.length >= 4 && (response.readUInt16BE(2) & TC) !== 0;
}
