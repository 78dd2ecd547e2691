import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../../src/pipeline/decision.js';
import { decodeDnstap } from '../../../src/dnstap/decode.js';
import { DecodeError } from '../../../src/util/errors.js';
import { Policy } from '../../../src/policy/policy.js';
import { addressBytes, dnsResponse, dnstapFrame } from '../../support/dnstap.js';
import { PROPERTY_RUNS, mutated } from '../../support/mutate.js';

const allowAll = Policy.compile(['*'], { allowAll: true });
const some = Policy.compile(['*.test.']);

const client = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => addressBytes(`192.0.${a}.${b}`)),
  fc.nat(0xffff).map((n) => addressBytes(`fd00::${n.toString(16)}`)),
);
const answer = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => ({ type: 'A' as const, name: 'www.example.test', data: `198.51.${a}.${b}`, ttl: 60 })),
  fc.nat(0xffff).map((n) => ({ type: 'AAAA' as const, name: 'www.example.test', data: `2001:db8::${n.toString(16)}`, ttl: 60 })),
  fc.constant({ type: 'CNAME' as const, name: 'www.example.test', data: 'edge.example.test', ttl: 60 }),
);
/** Valid dnstap frames: mostly CLIENT_RESPONSE with a full response, some other message types. */
const validFrame = fc
  .tuple(fc.constantFrom(5, 6, 6, 6), client, fc.array(answer, { maxLength: 6 }), fc.boolean())
  .map(([type, queryAddress, answers, full]) =>
    dnstapFrame({ type, queryAddress, ...(full ? { responseMessage: dnsResponse('www.example.test', answers) } : {}) }),
  );

/** Runs `fn`; anything thrown must be a DecodeError. */
function onlyDecodeErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
  }
}

describe('dnstap decoding and decide() on random and hostile bytes', () => {
  it('let only a DecodeError escape, on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        onlyDecodeErrors(() => decodeDnstap(bytes));
        onlyDecodeErrors(() => decide(bytes, allowAll));
        onlyDecodeErrors(() => decide(bytes, some));
      }),
      PROPERTY_RUNS,
    );
  });

  it('decode a mutated valid frame or give a DecodeError, nothing else', () => {
    fc.assert(
      fc.property(mutated(validFrame), (bytes) => {
        onlyDecodeErrors(() => decodeDnstap(bytes));
        onlyDecodeErrors(() => decide(bytes, allowAll));
        onlyDecodeErrors(() => decide(bytes, some));
      }),
      PROPERTY_RUNS,
    );
  });

  it('allow only addresses whose bytes the frame carries', () => {
    fc.assert(
      fc.property(fc.oneof(validFrame, mutated(validFrame)), (bytes) => {
        let decision;
        try {
          decision = decide(bytes, allowAll);
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
          return;
        }
        if (decision.outcome !== 'allow') return;
        for (const { address } of [...decision.ipv4, ...decision.ipv6]) expect(bytes.includes(addressBytes(address))).toBe(true);
      }),
      PROPERTY_RUNS,
    );
  });

  it('decide valid frames without error (the generator is not all garbage)', () => {
    fc.assert(
      fc.property(validFrame, (bytes) => {
        expect(['allow', 'skip']).toContain(decide(bytes, allowAll).outcome);
      }),
      PROPERTY_RUNS,
    );
  });
});
