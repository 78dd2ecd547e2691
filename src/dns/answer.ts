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

export function extractAnswer(bytes: Uint8Array): Answer {
  const packet = decodePacket(bytes);
  const question = packet.questions?.[0];
  if (!question) throw new DecodeError('DNS response has no question section');
  const name = normaliseName(question.name);
  const rcode = packet.rcode ?? 'NOERROR';
  const answer: Answer = { name, rcode, chain: [name], ipv4: [], ipv6: [] };
  if (rcode !== 'NOERROR' || !packet.answers?.length) return answer;

  const records = packet.answers.filter(isInternetClass);
  answer.chain = followCnameChain(name, records);
  const onChain = new Set(answer.chain);
  for (const record of records) {
    if (record.type !== 'A' && record.type !== 'AAAA') continue;
    if (!onChain.has(normaliseName(record.name))) continue;
    addAddress(record.type === 'A' ? answer.ipv4 : answer.ipv6, record.data, record.ttl ?? 0);
  }
  return answer;
}

/** OPT pseudo-records carry no class; everything else must be IN to name an address. */
function isInternetClass(record: Record): boolean {
  const recordClass = (record as { class?: string }).class;
  return recordClass === undefined || recordClass === 'IN';
}

function decodePacket(bytes: Uint8Array): dnsPacket.Packet & { rcode?: string } {
  try {
    return dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new DecodeError(`malformed DNS message: ${(err as Error).message}`, { cause: err });
  }
}

function followCnameChain(start: string, records: Record[]): string[] {
  const chain = [start];
  let current = start;
  while (chain.length <= MAX_CNAME_CHAIN) {
    const cname = records.find((r) => r.type === 'CNAME' && normaliseName(r.name) === current);
    if (!cname || cname.type !== 'CNAME') break;
    const target = normaliseName(cname.data);
    if (chain.includes(target)) break; // a loop: the chain so far is all there is
    chain.push(target);
    current = target;
  }
  return chain;
}

/** A name may list the same address twice (once per chain step); keep the longest TTL. */
function addAddress(list: AddressRecord[], address: string, ttl: number): void {
  const existing = list.find((r) => r.address === address);
  if (existing) existing.ttl = Math.max(existing.ttl, ttl);
  else list.push({ address, ttl });
}
