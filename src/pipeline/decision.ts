/**
 * One DNS answer → one decision. Pure: bytes and the policies in, a plain object out.
 * Two sources feed it: a dnstap frame (decide) and a response the inline DNS proxy got from
 * its upstream (decideResponse). The client that asked picks the policy (policy/clients.ts)
 * whose patterns judge the name. Decoders throw DecodeError for bad bytes; the caller
 * counts it and skips the answer.
 */
import { readAddresses, readQuestion, type AddressRecord } from '../dns/answer.js';
import { formatAddress } from '../dnstap/address.js';
import { scanDnstap } from '../dnstap/decode.js';
import { MessageType } from '../dnstap/schema.js';
import type { Patterns } from '../policy/patterns.js';
import { AddressGuard } from '../policy/special-addresses.js';

export interface Refused {
  address: string;
  why: string;
}

export type SkipReason = 'not-a-client-response' | 'no-response-message' | 'not-noerror' | 'no-addresses';

export type Decision =
  | { outcome: 'allow'; name: string; client?: string; policy: string; pattern: string; ipv4: AddressRecord[]; ipv6: AddressRecord[]; refused: Refused[] }
  | { outcome: 'deny'; name: string; client?: string; policy: string; addresses?: string[] }
  | { outcome: 'skip'; reason: SkipReason; name?: string; rcode?: string; client?: string };

/** The policy of the client that asked: its name, and the patterns that judge the answer. */
export interface PolicyLookup {
  forClient(client: string | undefined): { policy: { name: string; patterns: Patterns; audit?: boolean } };
}

/** One set of patterns for every client, as before policies: for tests and benchmarks. */
export function onePolicy(patterns: Patterns, name = 'default'): PolicyLookup {
  const found = { policy: { name, patterns } };
  return { forClient: () => found };
}

/** Refuses the special-purpose ranges; the daemon adds --allow-cidr and the network's subnet. */
const DEFAULT_GUARD = new AddressGuard();

/** `deniedAddresses`: decode a denied answer's addresses too (the blocked view names them); otherwise a denied answer's records are skipped. */
export function decide(frame: Uint8Array, policies: PolicyLookup, guard: AddressGuard = DEFAULT_GUARD, deniedAddresses = false): Decision {
  const message = scanDnstap(frame);
  if (message.type !== MessageType.CLIENT_RESPONSE) return { outcome: 'skip', reason: 'not-a-client-response' };
  const { queryAddressAt, queryAddressEnd, responseAt, responseEnd } = message;
  const client = queryAddressEnd > queryAddressAt ? formatAddress(frame, queryAddressAt, queryAddressEnd - queryAddressAt) : undefined;
  if (responseEnd === responseAt) return { outcome: 'skip', reason: 'no-response-message', client };
  return decideResponse(frame.subarray(responseAt, responseEnd), client, policies, guard, deniedAddresses);
}

/** A DNS response sent (or about to be sent) to `client`. */
export function decideResponse(
  response: Uint8Array,
  client: string | undefined,
  policies: PolicyLookup,
  guard: AddressGuard = DEFAULT_GUARD,
  deniedAddresses = false,
): Decision {
  // Decisions always carry `client`, undefined when unknown: one object shape each, no spreading per answer.
  const question = readQuestion(response);
  const { name } = question;
  if (question.rcode !== 'NOERROR') return { outcome: 'skip', reason: 'not-noerror', name, rcode: question.rcode, client };
  if (question.answerCount === 0) return { outcome: 'skip', reason: 'no-addresses', name, client };
  const { policy } = policies.forClient(client);
  const pattern = policy.patterns.match(name);
  // A denied answer opens nothing, so its records are worth decoding only to name what is blocked later.
  if (!pattern) {
    if (!deniedAddresses) return { outcome: 'deny', name, client, policy: policy.name };
    const denied = readAddresses(question);
    return { outcome: 'deny', name, client, policy: policy.name, addresses: [...denied.ipv4, ...denied.ipv6].map((r) => r.address) };
  }
  const answer = readAddresses(question);
  if (answer.ipv4.length === 0 && answer.ipv6.length === 0) return { outcome: 'skip', reason: 'no-addresses', name, client };
  const refused: Refused[] = [];
  const ipv4 = openable(answer.ipv4, guard, refused);
  const ipv6 = openable(answer.ipv6, guard, refused);
  return { outcome: 'allow', name, client, policy: policy.name, pattern: pattern.source, ipv4, ipv6, refused };
}

/** The records the guard lets open (the same array when it refuses none), the others added to `refused`. */
function openable(records: AddressRecord[], guard: AddressGuard, refused: Refused[]): AddressRecord[] {
  let kept: AddressRecord[] | undefined;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const why = guard.refusal(record.address);
    if (why === undefined) kept?.push(record);
    else {
      refused.push({ address: record.address, why });
      kept ??= records.slice(0, i);
    }
  }
  return kept ?? records;
}
