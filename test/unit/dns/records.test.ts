/**
 * The in-place answer reader (records.ts) against a reference that decodes every record
 * with dns-packet, on random responses: same chain, same addresses, same TTLs.
 */
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CNAME_CHAIN, extractAnswer } from '../../../src/dns/answer.js';
import { decodeName, nameEquals, readNormalisedName, readRecords, skipName } from '../../../src/dns/records.js';
import { DecodeError } from '../../../src/util/errors.js';
import { normaliseName } from '../../../src/dns/name.js';
import { dnsResponse } from '../../support/dnstap.js';

/** The previous implementation: every answer record decoded by dns-packet, names compared as strings. */
function reference(bytes: Buffer) {
  const packet = dnsPacket.decode(bytes);
  const name = normaliseName(packet.questions![0]!.name);
  const records = (packet.answers ?? []).filter((r) => (r as { class?: string }).class === 'IN');
  const chain = [name];
  for (let current = name; chain.length <= MAX_CNAME_CHAIN; ) {
    const cname = records.find((r) => r.type === 'CNAME' && normaliseName(r.name) === current);
    if (!cname) break;
    const target = normaliseName((cname as { data: string }).data);
    if (chain.includes(target)) break;
    chain.push(target);
    current = target;
  }
  const collect = (type: 'A' | 'AAAA') => {
    const out: Array<{ address: string; ttl: number }> = [];
    for (const r of records) {
      if (r.type !== type || !chain.includes(normaliseName(r.name))) continue;
      const address = type === 'A' ? (r.data as string) : canonicalV6(r.data as string);
      const seen = out.find((o) => o.address === address);
      if (seen) seen.ttl = Math.max(seen.ttl, r.ttl ?? 0);
      else out.push({ address, ttl: r.ttl ?? 0 });
    }
    return out;
  };
  return { name, chain, ipv4: collect('A'), ipv6: collect('AAAA') };
}

/** dns-packet prints IPv6 its own way; compare through node's canonical form. */
function canonicalV6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

const label = fc.constantFrom('a', 'B', 'cdn', 'Edge', 'x-y', 'www', 'mid', 'Zz', 'caf\u00e9');
const name = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => `${labels.join('.')}.test`);
const v4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.51.${a}.${b}`);
const v6 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([a, b]) => `2001:db8::${a.toString(16)}:${b.toString(16)}`);
const ttl = fc.nat(86_400);
const record = fc.oneof(
  fc.record({ type: fc.constant('A' as const), name, data: v4, ttl }),
  fc.record({ type: fc.constant('AAAA' as const), name, data: v6, ttl }),
  fc.record({ type: fc.constant('CNAME' as const), name, data: name, ttl }),
);

describe('the in-place answer reader', () => {
  it('agrees with decoding every record with dns-packet, on random responses', () => {
    fc.assert(
      fc.property(name, fc.array(record, { maxLength: 12 }), (question, answers) => {
        const bytes = dnsResponse(question, answers);
        const { name: n, chain, ipv4, ipv6 } = extractAnswer(bytes);
        expect({ name: n, chain, ipv4, ipv6: ipv6.map((r) => ({ ...r, address: canonicalV6(r.address) })) }).toEqual(reference(bytes));
      }),
      { numRuns: 500, seed: 20261123 },
    );
  });

  it('reads a question name in place exactly as dns-packet decodes and normalises it, errors included', () => {
    const anyLabel = fc.uint8Array({ minLength: 0, maxLength: 70 });
    const asciiLabel = fc.stringMatching(/^[A-Za-z0-9-]{1,63}$/).map((l) => Buffer.from(l, 'latin1'));
    const wire = fc.array(fc.oneof(asciiLabel, anyLabel), { maxLength: 6 }).map((labels) =>
      Buffer.concat([Buffer.alloc(12), ...labels.map((l) => Buffer.concat([Buffer.from([Math.min(l.length, 255)]), l])), Buffer.from([0, 0, 1, 0, 1])]),
    );
    const outcome = (read: () => { name: string; next: number }) => {
      try {
        return read();
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
        return 'error';
      }
    };
    fc.assert(
      fc.property(wire, fc.nat(30), (bytes, cut) => {
        const buf = bytes.subarray(0, Math.max(12, bytes.length - cut));
        const expected = outcome(() => ({ name: normaliseName(decodeName(buf, 12)), next: skipName(buf, 12) }));
        expect(outcome(() => readNormalisedName(buf, 12))).toEqual(expected);
      }),
      { numRuns: 3000, seed: 20261123 },
    );
  });

  it('compares names across compression pointers and case, and tells different names apart', () => {
    const bytes = dnsResponse('WWW.Example.test', [{ type: 'A', name: 'www.example.TEST', data: '198.51.100.1', ttl: 1 }]);
    const [answer] = readRecords(bytes, 12 + 'www.example.test'.length + 2 + 4, 1);
    expect(nameEquals(bytes, answer!.ownerAt, 'www.example.test.')).toBe(true);
    expect(nameEquals(bytes, answer!.ownerAt, 'www.example.tes.')).toBe(false);
    expect(nameEquals(bytes, answer!.ownerAt, 'ww.example.test.')).toBe(false);
    expect(nameEquals(bytes, 12, 'www.example.test.')).toBe(true);
  });

  it('throws a DecodeError for a pointer loop, a bad label type and records past the end', () => {
    const loop = Buffer.from([0xc0, 0x00]);
    expect(() => nameEquals(loop, 0, 'a.')).toThrow(DecodeError);
    expect(() => nameEquals(Buffer.from([0x40, 0x61, 0]), 0, 'a.')).toThrow(/label type/);
    const bytes = dnsResponse('a.test', [{ type: 'A', name: 'a.test', data: '198.51.100.1', ttl: 1 }]);
    expect(() => readRecords(bytes, 12 + 8 + 4, 2)).toThrow(DecodeError);
    expect(() => extractAnswer(bytes.subarray(0, bytes.length - 2))).toThrow(DecodeError);
  });
});
