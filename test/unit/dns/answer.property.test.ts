import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CNAME_CHAIN, extractAnswer, type Answer } from '../../../src/dns/answer.js';
import { DecodeError } from '../../../src/util/errors.js';
import { addressBytes, dnsResponse } from '../../support/dnstap.js';
import { PROPERTY_RUNS, mutated } from '../../support/mutate.js';

const label = fc.constantFrom('a', 'b', 'cdn', 'www', 'Edge');
const name = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => `${labels.join('.')}.test`);
const v4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.51.${a}.${b}`);
const v6 = fc.nat(0xffff).map((n) => `2001:db8::${n.toString(16)}`);
const record = fc.oneof(
  fc.record({ type: fc.constant('A' as const), name, data: v4, ttl: fc.nat() }),
  fc.record({ type: fc.constant('AAAA' as const), name, data: v6, ttl: fc.nat() }),
  fc.record({ type: fc.constant('CNAME' as const), name, data: name, ttl: fc.nat() }),
);
const response = fc.tuple(name, fc.array(record, { maxLength: 10 })).map(([q, answers]) => dnsResponse(q, answers));

/** A response whose CNAMEs chain a.test → b.test → … longer than any resolver follows. */
function longChain(length: number): Buffer {
  const names = Array.from({ length: length + 1 }, (_, i) => `n${i}.test`);
  const cnames = names.slice(0, -1).map((n, i) => ({ type: 'CNAME' as const, name: n, data: names[i + 1]!, ttl: 60 }));
  return dnsResponse(names[0]!, [...cnames, { type: 'A', name: names.at(-1)!, data: '198.51.100.7', ttl: 60 }]);
}

/** extractAnswer, with the properties every outcome must have. */
function checked(bytes: Buffer): Answer | undefined {
  let answer: Answer;
  try {
    answer = extractAnswer(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
    return undefined;
  }
  expect(answer.chain.length).toBeLessThanOrEqual(MAX_CNAME_CHAIN + 1);
  for (const { address } of [...answer.ipv4, ...answer.ipv6]) expect(bytes.includes(addressBytes(address))).toBe(true);
  return answer;
}

describe('DNS answer extraction on random and hostile bytes', () => {
  it('throws nothing but a DecodeError on random bytes, and invents no address', () => {
    const header = fc.uint8Array({ minLength: 12, maxLength: 12 });
    const randomMessage = fc.tuple(header, fc.uint8Array({ maxLength: 300 })).map(([h, rest]) => Buffer.concat([h, rest]));
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), randomMessage), (bytes) => void checked(bytes)), PROPERTY_RUNS);
  });

  it('throws nothing but a DecodeError on mutated responses (bit flips, truncation, bad lengths, pointer loops)', () => {
    fc.assert(fc.property(mutated(response), (bytes) => void checked(bytes)), PROPERTY_RUNS);
  });

  it('reads every valid response, with a bounded chain', () => {
    fc.assert(
      fc.property(response, (bytes) => {
        expect(checked(bytes)).toBeDefined();
      }),
      PROPERTY_RUNS,
    );
  });

  it('stops following CNAMEs after MAX_CNAME_CHAIN links, and a pointer loop in a name is a DecodeError', () => {
    const answer = checked(longChain(MAX_CNAME_CHAIN + 10))!;
    expect(answer.chain).toHaveLength(MAX_CNAME_CHAIN + 1);
    expect(answer.ipv4).toEqual([]);
    const bytes = dnsResponse('a.test', [{ type: 'A', name: 'a.test', data: '198.51.100.1', ttl: 60 }]);
    const ownerAt = 12 + 'a.test'.length + 2 + 4;
    // dns-packet writes the owner name in full; replace it with a pointer to itself.
    const looped = Buffer.concat([bytes.subarray(0, ownerAt), Buffer.from([0xc0, ownerAt]), bytes.subarray(ownerAt + 'a.test'.length + 2)]);
    expect(() => extractAnswer(looped)).toThrow(DecodeError);
    expect(() => extractAnswer(looped)).toThrow(/pointers loop/);
  });
});
