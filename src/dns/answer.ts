/**
 * Answer extraction: DNS response bytes in, the addresses a name resolved to out.
 *
 * The name that counts is the question name. From it we follow the CNAME chain through
 * the answer section (each CNAME must be owned by the chain's current name) and collect
 * every A and AAAA record owned by a name on the chain. Authority and additional records,
 * and answer records off the chain, could be planted by anyone upstream: they are ignored.
 */
import dnsPacket from 'dns-packet';
import { DecodeError } from '../errors.js';
import { normaliseName } from '../policy/name.js';

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

type Record = dnsPacket.Answer;

/** dns-packet's per-section codecs, which its type definitions leave out. */
interface SectionCodec<T> {
  decode: ((buf: Buffer, offset: number) => T) & { bytes: number };
}
const codecs = dnsPacket as unknown as { question: SectionCodec<dnsPacket.Question>; answer: SectionCodec<Record> };

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
 * Only the header, the question and the answer section are ever read (with dns-packet's
 * section codecs); authority and additional records are never used, so never decoded.
 */
export function readQuestion(bytes: Uint8Array): Question {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES) throw new DecodeError(`malformed DNS message: ${buf.length} bytes, shorter than a header`);
  const rcodeNumber = buf.readUInt16BE(2) & 0x0f;
  const questions = buf.readUInt16BE(4);
  if (questions === 0) throw new DecodeError('DNS response has no question section');
  const first = decodeSection(codecs.question, buf, HEADER_BYTES);
  // Further questions (never sent in practice) are skipped to reach the answer section.
  let answersAt = first.next;
  for (let i = 1; i < questions; i++) answersAt = decodeSection(codecs.question, buf, answersAt).next;
  return {
    name: normaliseName(first.value.name),
    rcode: RCODES[rcodeNumber] ?? `RCODE${rcodeNumber}`,
    answerCount: rcodeNumber === 0 ? buf.readUInt16BE(6) : 0,
    buf,
    answersAt,
  };
}

/** The CNAME chain from the question name and every address owned by a name on it. */
export function readAddresses(question: Question): Answer {
  const { name, rcode, buf } = question;
  const answer: Answer = { name, rcode, chain: [name], ipv4: [], ipv6: [] };
  const records: Record[] = [];
  let offset = question.answersAt;
  for (let i = 0; i < question.answerCount; i++) {
    const record = decodeSection(codecs.answer, buf, offset);
    if (isInternetClass(record.value)) records.push(record.value);
    offset = record.next;
  }
  answer.chain = followCnameChain(name, records);
  for (const record of records) {
    if (record.type !== 'A' && record.type !== 'AAAA') continue;
    if (!answer.chain.some((link) => sameName(record.name, link))) continue;
    addAddress(record.type === 'A' ? answer.ipv4 : answer.ipv6, record.data, record.ttl ?? 0);
  }
  return answer;
}

export function extractAnswer(bytes: Uint8Array): Answer {
  return readAddresses(readQuestion(bytes));
}

/** OPT pseudo-records carry no class; everything else must be IN to name an address. */
function isInternetClass(record: Record): boolean {
  const recordClass = (record as { class?: string }).class;
  return recordClass === undefined || recordClass === 'IN';
}

function decodeSection<T>(codec: SectionCodec<T>, buf: Buffer, offset: number): { value: T; next: number } {
  try {
    const value = codec.decode(buf, offset);
    return { value, next: offset + codec.decode.bytes };
  } catch (err) {
    throw new DecodeError(`malformed DNS message: ${(err as Error).message}`, { cause: err });
  }
}

function followCnameChain(start: string, records: Record[]): string[] {
  const chain = [start];
  let current = start;
  while (chain.length <= MAX_CNAME_CHAIN) {
    const cname = records.find((r) => r.type === 'CNAME' && sameName(r.name, current));
    if (!cname || cname.type !== 'CNAME') break;
    const target = normaliseName(cname.data);
    if (chain.includes(target)) break; // a loop: the chain so far is all there is
    chain.push(target);
    current = target;
  }
  return chain;
}

/**
 * Does a name as dns-packet decoded it equal a normalised name? The same test as
 * normaliseName(wire) === normalised, without building a string per record.
 */
function sameName(wire: string, normalised: string): boolean {
  const length = wire.endsWith('.') ? wire.length - 1 : wire.length;
  if (length + 1 !== normalised.length) return false;
  for (let i = 0; i < length; i++) {
    let c = wire.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20; // ASCII letters only, as in normaliseName
    if (c !== normalised.charCodeAt(i)) return false;
  }
  return true;
}

/** A name may list the same address twice (once per chain step); keep the longest TTL. */
function addAddress(list: AddressRecord[], address: string, ttl: number): void {
  const existing = list.find((r) => r.address === address);
  if (existing) existing.ttl = Math.max(existing.ttl, ttl);
  else list.push({ address, ttl });
}
