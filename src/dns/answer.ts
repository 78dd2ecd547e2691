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
import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, readName, readNormalisedName, readRecord, sameName, skipName, type WireRecord } from './records.js';

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

/** The record being read; its fields are used before the next is read. */
const record: WireRecord = { type: 0, class: 0, ttl: 0, ownerAt: 0, rdataAt: 0, rdlength: 0 };
/** Owner and target offsets of the answer's IN CNAME records, in pairs (the first `cnameSlots`): reused, usually empty. */
const cnames: number[] = [];
let cnameSlots = 0;
/** Where each name of the chain being read is in the message: the question's, then CNAME targets'. */
const chainAt: number[] = [];

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
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

/**
 * The CNAME chain from the question name and every address owned by a name on it. Once per
 * allowed answer, so records are read into one reused object, not an object each, and
 * owners are compared with the chain's names where the message holds them (chainAt).
 */
export function readAddresses(question: Question): Answer {
  const { name, rcode, buf, answersAt, answerCount } = question;
  const chain = followCnameChain(buf, name, answersAt, answerCount);
  const answer: Answer = { name, rcode, chain, ipv4: [], ipv6: [] };
  const r = record;
  for (let i = 0, at = answersAt; i < answerCount; i++) {
    at = readRecord(buf, at, r, i, answerCount);
    if (r.class !== CLASS_IN) continue;
    if (r.type === TYPE_A && r.rdlength === 4) {
      if (onChain(buf, r.ownerAt, chain.length)) addAddress(answer.ipv4, formatIPv4(buf, r.rdataAt), r.ttl);
    } else if (r.type === TYPE_AAAA && r.rdlength === 16) {
      if (onChain(buf, r.ownerAt, chain.length)) addAddress(answer.ipv6, formatIPv6(buf, r.rdataAt), r.ttl);
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

/**
 * The question name, then the target of the CNAME its current end owns, and so on; where
 * each is in the message goes to chainAt. Also the pass that checks every record fits in
 * the message, before any address is taken.
 */
function followCnameChain(buf: Buffer, start: string, answersAt: number, answerCount: number): string[] {
  cnameSlots = 0;
  const r = record;
  for (let i = 0, at = answersAt; i < answerCount; i++) {
    at = readRecord(buf, at, r, i, answerCount);
    if (r.type === TYPE_CNAME && r.class === CLASS_IN) {
      cnames[cnameSlots++] = r.ownerAt;
      cnames[cnameSlots++] = r.rdataAt;
    }
  }
  const chain = [start];
  chainAt[0] = HEADER_BYTES;
  while (cnameSlots > 0 && chain.length <= MAX_CNAME_CHAIN) {
    const currentAt = chainAt[chain.length - 1]!;
    let targetAt = -1;
    for (let i = 0; i < cnameSlots; i += 2) {
      if (sameName(buf, cnames[i]!, currentAt)) {
        targetAt = cnames[i + 1]!;
        break;
      }
    }
    if (targetAt < 0) break;
    const target = readName(buf, targetAt);
    if (chain.includes(target)) break; // a loop: the chain so far is all there is
    chainAt[chain.length] = targetAt;
    chain.push(target);
  }
  return chain;
}

/** The usual owner is a pointer to the question's name: that needs no comparison at all. */
function onChain(buf: Buffer, ownerAt: number, links: number): boolean {
  if (buf[ownerAt] === 0xc0 && buf[ownerAt + 1] === HEADER_BYTES) return true;
  for (let i = 0; i < links; i++) if (sameName(buf, ownerAt, chainAt[i]!)) return true;
  return false;
}

/** A name may list the same address twice (once per chain step); keep the longest TTL. */
function addAddress(list: AddressRecord[], address: string, ttl: number): void {
  for (let i = 0; i < list.length; i++) {
    const existing = list[i]!;
    if (existing.address === address) {
      existing.ttl = Math.max(existing.ttl, ttl);
      return;
    }
  }
  list.push({ address, ttl });
}
