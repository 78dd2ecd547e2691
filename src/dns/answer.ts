/**
 * Answer extraction: DNS response bytes in, the addresses a name resolved to out.
 *
 * The name that counts is the question name. From it we follow the CNAME chain through
 * the answer section (each CNAME must be owned by the chain's current name) and collect
 * every A and AAAA record owned by a name on the chain. Authority and additional records,
 * and answer records off the chain, could be planted by anyone upstream: they are ignored.
 */
import { DecodeError } from '../util/errors.js';
import { formatIPv4, formatIPv6 } from '../dnstap/address.js';
import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, nameEquals, readName, readNormalisedName, readRecords, skipName, type WireRecord } from './records.js';

/** Longer chains are broken or hostile; resolvers give up well before this (BIND at 16). */
export const MAX_CNAME_CHAIN = 16;

export interface AddressRecord {
  address: string;
  ttl: number;
}

export interface Answer {
  /** The question name, normalised. */
  name: string;
  rcode: string;
  /** The question name followed by each CNAME target, normalised. */
  chain: string[];
  ipv4: AddressRecord[];
  ipv6: AddressRecord[];
}

const HEADER_BYTES = 12;
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** The question of a response, read first and alone: it decides whether the rest is worth reading. */
export interface Question {
  /** The question name, normalised. */
  name: string;
  rcode: string;
  /** Records in the answer section; 0 for an empty (NODATA) or failed answer. */
  answerCount: number;
  buf: Buffer;
  /** Where the answer section starts. */
  answersAt: number;
}

/**
 * Only the header, the question and the answer section are ever read, in place (records.ts);
 * authority and additional records are never used, so never decoded.
 */
export function readQuestion(bytes: Uint8Array): Question {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES) throw new DecodeError(`malformed DNS message: ${buf.length} bytes, shorter than a header`);
  const rcodeNumber = buf.readUInt16BE(2) & 0x0f;
  const questions = buf.readUInt16BE(4);
  if (questions === 0) throw new DecodeError('DNS response has no question section');
  const first = readNormalisedName(buf, HEADER_BYTES);
  // Further questions (never sent in practice) are skipped to reach the answer section.
  let answersAt = questionEnd(buf, first.next);
  for (let i = 1; i < questions; i++) answersAt = questionEnd(buf, skipName(buf, answersAt));
  return {
    name: first.name,
    rcode: RCODES[rcodeNumber] ?? `RCODE${rcodeNumber}`,
    answerCount: rcodeNumber === 0 ? buf.readUInt16BE(6) : 0,
    buf,
    answersAt,
  };
}

/** The CNAME chain from the question name and every address owned by a name on it. */
export function readAddresses(question: Question): Answer {
  const { name, rcode, buf } = question;
  const records = readRecords(buf, question.answersAt, question.answerCount).filter((r) => r.class === CLASS_IN);
  const chain = followCnameChain(buf, name, records);
  const answer: Answer = { name, rcode, chain, ipv4: [], ipv6: [] };
  for (const record of records) {
    if (record.type === TYPE_A && record.rdlength === 4) {
      if (onChain(buf, record, chain)) addAddress(answer.ipv4, formatIPv4(buf, record.rdataAt), record.ttl);
    } else if (record.type === TYPE_AAAA && record.rdlength === 16) {
      if (onChain(buf, record, chain)) addAddress(answer.ipv6, formatIPv6(buf.subarray(record.rdataAt, record.rdataAt + 16)), record.ttl);
    }
  }
  return answer;
}

export function extractAnswer(bytes: Uint8Array): Answer {
  return readAddresses(readQuestion(bytes));
}

/** Past a question's type and class, which follow its name. */
function questionEnd(buf: Buffer, afterName: number): number {
  if (afterName + 4 > buf.length) throw new DecodeError('malformed DNS message: a question is cut short');
  return afterName + 4;
}

function followCnameChain(buf: Buffer, start: string, records: readonly WireRecord[]): string[] {
  const chain = [start];
  let current = start;
  while (chain.length <= MAX_CNAME_CHAIN) {
    const cname = records.find((r) => r.type === TYPE_CNAME && nameEquals(buf, r.ownerAt, current));
    if (!cname) break;
    const target = readName(buf, cname.rdataAt);
    if (chain.includes(target)) break; // a loop: the chain so far is all there is
    chain.push(target);
    current = target;
  }
  return chain;
}

/** The usual owner is a pointer to the question's name: that needs no comparison at all. */
function onChain(buf: Buffer, record: WireRecord, chain: readonly string[]): boolean {
  if (buf[record.ownerAt] === 0xc0 && buf[record.ownerAt + 1] === HEADER_BYTES) return true;
  for (const link of chain) if (nameEquals(buf, record.ownerAt, link)) return true;
  return false;
}

/** A name may list the same address twice (once per chain step); keep the longest TTL. */
function addAddress(list: AddressRecord[], address: string, ttl: number): void {
  const existing = list.find((r) => r.address === address);
  if (existing) existing.ttl = Math.max(existing.ttl, ttl);
  else list.push({ address, ttl });
}
