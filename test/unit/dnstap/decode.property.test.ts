import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, onePolicy } from '../../../src/pipeline/decision.js';
import { decodeDnstap } from '../../../src/dnstap/decode.js';
import { DecodeError } from '../../../src/util/errors.js';
import { Patterns } from '../../../src/policy/patterns.js';
import { DnstapType, addressBytes, dnsResponse, dnstapFrame } from '../../support/dnstap.js';
import { PROPERTY_RUNS, mutated } from '../../support/mutate.js';

const allowAll = onePolicy(Patterns.compile(['*'], { allowAll: true }));
const some = onePolicy(Patterns.compile(['*.test.']));

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

/**
 * The hand-written wire reader against protobufjs's generic decoder of proto/dnstap.proto,
 * on frames with every field of the schema set at random (varints up to 64 bits, fixed32,
 * bytes, the nested Patterns): the same fields out, whatever else is in the way.
 */
describe('decodeDnstap agrees with protobufjs', () => {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
  const uint64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => n.toString());
  const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
  const message = fc.record(
    {
      type: fc.integer({ min: 1, max: 14 }),
      socketFamily: fc.constantFrom(1, 2),
      socketProtocol: fc.integer({ min: 1, max: 7 }),
      queryAddress: fc.oneof(bytes(0), fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => Buffer.from(b)), fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b))),
      responseAddress: bytes(16),
      queryPort: fc.nat(0xffff),
      responsePort: fc.nat(0xffff),
      queryTimeSec: uint64,
      queryTimeNsec: fc.nat(999_999_999),
      queryMessage: bytes(64),
      queryZone: bytes(16),
      responseTimeSec: uint64,
      responseTimeNsec: fc.nat(999_999_999),
      responseMessage: bytes(128),
      policy: fc.record({ type: fc.string({ maxLength: 8 }), rule: bytes(8), action: fc.integer({ min: 1, max: 6 }), match: fc.integer({ min: 1, max: 5 }), value: bytes(8) }, { requiredKeys: [] }),
      httpProtocol: fc.integer({ min: 1, max: 3 }),
    },
    { requiredKeys: ['type'] },
  );
  const dnstap = fc.record({ identity: optional(fc.string({ maxLength: 12 })), version: optional(bytes(12)), extra: optional(bytes(12)), message });

  it('reads the same type, identity, client address and port, and response from any frame the schema allows', () => {
    fc.assert(
      fc.property(dnstap, ({ identity, ...rest }) => {
        const fields = { type: 1, ...rest, ...(identity !== undefined ? { identity: Buffer.from(identity) } : {}) };
        const frame = Buffer.from(DnstapType.encode(DnstapType.create(fields)).finish());
        const theirs = DnstapType.decode(frame) as unknown as { identity?: Uint8Array; message: { type: number; queryAddress?: Uint8Array; queryPort?: number; responseMessage?: Uint8Array } };
        const m = theirs.message;
        const expected = {
          type: m.type,
          ...(theirs.identity?.length ? { identity: Buffer.from(theirs.identity).toString('utf8') } : {}),
          // protobufjs gives an unset field its default from the prototype: ask whether it was on the wire.
          ...(Object.hasOwn(m, 'queryPort') ? { queryPort: m.queryPort } : {}),
        };
        let ours;
        try {
          ours = decodeDnstap(frame);
        } catch (err) {
          // Only an address that is neither 4 nor 16 bytes may be refused; protobufjs has no view on that.
          expect(m.queryAddress?.length).not.toBe(4);
          expect(m.queryAddress?.length).not.toBe(16);
          expect(err).toBeInstanceOf(DecodeError);
          return;
        }
        expect({ type: ours.type, identity: ours.identity, queryPort: ours.queryPort }).toEqual(expected);
        expect(ours.responseMessage ? Buffer.from(ours.responseMessage) : undefined).toEqual(m.responseMessage?.length ? Buffer.from(m.responseMessage) : undefined);
        if (m.queryAddress?.length) expect(addressBytes(ours.queryAddress!)).toEqual(Buffer.from(m.queryAddress).subarray(m.queryAddress.length === 16 && ours.queryAddress!.includes('.') ? 12 : 0));
      }),
      { ...PROPERTY_RUNS, numRuns: 500 },
    );
  });

  it('refuses, with a reason, frames protobufjs also cannot read', () => {
    fc.assert(
      fc.property(mutated(validFrame), (frame) => {
        let theirs = true;
        try {
          DnstapType.decode(frame);
        } catch {
          theirs = false;
        }
        if (theirs) return;
        expect(() => decodeDnstap(frame)).toThrow(/^not a dnstap protobuf message: .+|^dnstap frame carries no Message/);
      }),
      PROPERTY_RUNS,
    );
  });
});
