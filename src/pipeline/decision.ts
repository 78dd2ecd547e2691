/**
 * One DNS answer → one decision. Pure: bytes and the policy in, a plain object out.
 * Two sources feed it: a dnstap frame (decide) and a response the inline DNS proxy got from
 * its upstream (decideResponse). Decoders throw DecodeError for bad bytes; the caller
 * counts it and skips the answer.
 */
import { readAddresses, readQuestion, type AddressRecord } from '../dns/answer.js';
import { formatAddress } from '../dnstap/address.js';
import { scanDnstap } from '../dnstap/decode.js';
import { MessageType } from '../dnstap/schema.js';
import type { Policy } from '../policy/policy.js';
import { AddressGuard } from '../policy/special-addresses.js';

export interface Refused {
  address: string;
  why: string;
}

export type SkipReason = 'not-a-client-response' | 'no-response-message' | 'not-noerror' | 'no-addresses';

export type Decision =
  | { outcome: 'allow'; name: string; client?: string; pattern: string; ipv4: AddressRecord[]; ipv6: AddressRecord[]; refused: Refused[] }
  | { outcome: 'deny'; name: string; client?: string }
  | { outcome: 'skip'; reason: SkipReason; name?: string; rcode?: string; client?: string };

/** Refuses the special-purpose ranges; the daemon adds --allow-cidr and the network's subnet. */
const DEFAULT_GUARD = new AddressGuard();

export function decide(frame: Uint8Array, policy: Policy, guard: AddressGuard = DEFAULT_GUARD): Decision {
  const message = scanDnstap(frame);
  if (message.type !== MessageType.CLIENT_RESPONSE) return { outcome: 'skip', reason: 'not-a-client-response' };
  const { queryAddressAt, queryAddressEnd, responseAt, responseEnd } = message;
  const client = queryAddressEnd > queryAddressAt ? formatAddress(frame, queryAddressAt, queryAddressEnd - queryAddressAt) : undefined;
  if (responseEnd === responseAt) return { outcome: 'skip', reason: 'no-response-message', ...(client ? { client } : {}) };
  return decideResponse(frame.subarray(responseAt, responseEnd), client, policy, guard);
}

/** A DNS response sent (or about to be sent) to `client`. */
export function decideResponse(response: Uint8Array, client: string | undefined, policy: Policy, guard: AddressGuard = DEFAULT_GUARD): Decision {
  const withClient = client ? { client } : {};
  const question = readQuestion(response);
  if (question.rcode !== 'NOERROR') {
    return { outcome: 'skip', reason: 'not-noerror', name: question.name, rcode: question.rcode, ...withClient };
  }
  if (question.answerCount === 0) return { outcome: 'skip', reason: 'no-addresses', name: question.name, ...withClient };
  const pattern = policy.match(question.name);
  // A denied answer opens nothing, so its records are not worth decoding.
  if (!pattern) return { outcome: 'deny', name: question.name, ...withClient };
  const answer = readAddresses(question);
  if (answer.ipv4.length === 0 && answer.ipv6.length === 0) {
    return { outcome: 'skip', reason: 'no-addresses', name: answer.name, ...withClient };
  }
  const refused: Refused[] = [];
  const openable = (record: AddressRecord): boolean => {
    const why = guard.refusal(record.address);
    if (why) refused.push({ address: record.address, why });
    return !why;
  };
  const ipv4 = answer.ipv4.filter(openable);
  const ipv6 = answer.ipv6.filter(openable);
  return { outcome: 'allow', name: answer.name, ...withClient, pattern: pattern.source, ipv4, ipv6, refused };
}
