/**
 * The in-place answer reader (records.ts) against a reference that decodes every record
 * with dns-packet, on random responses: same chain, same addresses, same TTLs. dns-packet
 * writes a name's bytes as UTF-8 text and a dot inside a label as a plain dot; the reference
 * then writes them as this reader does (`presentation`), which it can for the names generated
 * here (no dot inside a label).
 */
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CNAME_CHAIN, extractAnswer } from '../../../src/dns/answer.js';
import { readNormalisedName, readRecords, sameName, skipName } from '../../../src/dns/records.js';
import { DecodeError } from '../../../src/util/errors.js';
import { dnsResponse } from '../../support/dnstap.js';
import { pointer, wireName } from '../../support/wire.js';

/** RFC 1035 presentation form of wire labels, lower-cased, as names off the wire are written. */
function presentation(labels: readonly Uint8Array[]): string {
  if (labels.length === 0) return '.';
  const byte = (c: number) =>
    c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 0x20)
    : c === 0x2e || c === 0x5c ? `\\${String.fromCharCode(c)}`
    : c <= 0x20 || c >= 0x7f ? `\\${String(c).padStart(3, '0')}`
    : String.fromCharCode(c);
  return labels.map((l) => `${[...l].map(byte).join('')}.`).join('');
}

/** A name as dns-packet decodes it (no dot inside a label), written as the reader writes it. */
function normaliseName(name: string): string {
  return presentation(name.split('.').filter(Boolean).map((label) => Buffer.from(label, 'utf8')));
}

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

  it('reads a question name in place as its labels escaped, and fails exactly where dns-packet fails', () => {
    const anyLabel = fc.uint8Array({ minLength: 0, maxLength: 70 });
    const asciiLabel = fc.stringMatching(/^[A-Za-z0-9-]{1,63}$/).map((l) => Buffer.from(l, 'latin1'));
    const labels = fc.array(fc.oneof(asciiLabel, anyLabel), { maxLength: 6 });
    const wire = (ls: Uint8Array[]) =>
      Buffer.concat([Buffer.alloc(12), ...ls.map((l) => Buffer.concat([Buffer.from([Math.min(l.length, 255)]), l])), Buffer.from([0, 0, 1, 0, 1])]);
    const outcome = (read: () => { name: string; next: number }) => {
      try {
        return read();
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
        return 'error';
      }
    };
    const dnsPacketName = (dnsPacket as unknown as { name: { decode(buf: Buffer, offset: number): string } }).name;
    fc.assert(
      fc.property(labels, fc.nat(30), (ls, cut) => {
        const bytes = wire(ls);
        const buf = bytes.subarray(0, Math.max(12, bytes.length - cut));
        let fails = false;
        try {
          dnsPacketName.decode(buf, 12);
        } catch {
          fails = true;
        }
        const read = outcome(() => readNormalisedName(buf, 12));
        if (fails) return void expect(read).toBe('error');
        const root = ls.findIndex((l) => l.length === 0); // an empty label is the root: it ends the name
        expect(read).toEqual({ name: presentation(root < 0 ? ls : ls.slice(0, root)), next: skipName(buf, 12) });
      }),
      { numRuns: 3000, seed: 20261123 },
    );
  });

  it('compares names across compression pointers and case, and tells different names apart', () => {
    const names = [wireName('WWW', 'Example', 'test'), wireName('www', 'example', 'TEST'), wireName('www', 'example', 'tes'), wireName('ww', 'example', 'test'), wireName('w@w', 'example', 'test'), wireName('w`w', 'example', 'test')];
    const bytes = Buffer.concat([Buffer.alloc(12), ...names, Buffer.of(3), Buffer.from('www'), pointer(12 + 4)]);
    const at = names.map((_, i) => 12 + names.slice(0, i).reduce((sum, n) => sum + n.length, 0));
    const pointing = bytes.length - 6; // www, then a pointer to "example.test." of the first name
    expect(sameName(bytes, at[1]!, at[0]!)).toBe(true);
    expect(sameName(bytes, pointing, at[0]!)).toBe(true);
    expect(sameName(bytes, at[1]!, pointing)).toBe(true);
    expect(sameName(bytes, at[2]!, at[0]!)).toBe(false);
    expect(sameName(bytes, at[3]!, at[0]!)).toBe(false);
    expect(sameName(bytes, at[4]!, at[5]!)).toBe(false); // '@' and '`' differ by 0x20 but are not letters
  });

  it('throws a DecodeError for a pointer loop, a bad label type and records past the end', () => {
    const loop = Buffer.from([0xc0, 0x00, 0x01, 0x61, 0x00]);
    expect(() => sameName(loop, 0, 2)).toThrow(DecodeError);
    expect(() => sameName(loop, 2, 0)).toThrow(/pointers loop/);
    expect(() => sameName(Buffer.from([0x40, 0x61, 0, 0x01, 0x61, 0]), 0, 3)).toThrow(/label type/);
    const bytes = dnsResponse('a.test', [{ type: 'A', name: 'a.test', data: '198.51.100.1', ttl: 1 }]);
    expect(() => readRecords(bytes, 12 + 8 + 4, 2)).toThrow(DecodeError);
    expect(() => extractAnswer(bytes.subarray(0, bytes.length - 2))).toThrow(DecodeError);
  });
});

/**
 * A label may hold any byte, '.' and '\' included. Names off the wire are written in
 * presentation form with RFC 1035 escapes, so that two different wire names never give
 * the same string: the single label "allowed.test" is `allowed\.test.`, not `allowed.test.`.
 */
describe('names read off the wire: one string per wire name', () => {
  const at12 = (...parts: Buffer[]) => Buffer.concat([Buffer.alloc(12), ...parts]);

  it.each([
    ['a label holding a dot', wireName('Allowed.TEST'), 'allowed\\.test.'],
    ['a label holding a backslash', wireName('a\\b', 'test'), 'a\\\\b.test.'],
    ['a label ending in a backslash, then another label', wireName('a\\', 'test'), 'a\\\\.test.'],
    ['a label holding a NUL', wireName('a\0b', 'test'), 'a\\000b.test.'],
    ['a space, a DEL and bytes outside ASCII', wireName('a b\x7f\xc3\xa9'), 'a\\032b\\127\\195\\169.'],
    ['other printable ASCII as it is, next to a dot', wireName('_x-*!~"().', 'test'), '_x-*!~"()\\..test.'],
  ])('%s', (_, wire, expected) => {
    expect(readNormalisedName(at12(wire), 12)).toEqual({ name: expected, next: 12 + wire.length });
  });

  it('escapes the same way behind a compression pointer', () => {
    // "test." at 12, then the question: the label "allowed.x" and a pointer to "test.".
    const bytes = at12(wireName('test'), Buffer.of(9), Buffer.from('allowed.x'), pointer(12));
    expect(readNormalisedName(bytes, 18).name).toBe('allowed\\.x.test.');
    expect(readNormalisedName(bytes, 18).next).toBe(bytes.length);
  });

  it('never finds a label holding a dot equal to two labels, nor the other way round', () => {
    const oneLabel = wireName('allowed.test');
    const bytes = at12(oneLabel, wireName('allowed', 'test'), wireName('ALLOWED.test'));
    const twoLabelsAt = 12 + oneLabel.length;
    const upperAt = twoLabelsAt + wireName('allowed', 'test').length;
    expect(sameName(bytes, 12, twoLabelsAt)).toBe(false);
    expect(sameName(bytes, twoLabelsAt, 12)).toBe(false);
    expect(sameName(bytes, upperAt, 12)).toBe(true);
    expect(readNormalisedName(bytes, 12).name).not.toBe(readNormalisedName(bytes, twoLabelsAt).name);
  });

  it('tells apart names whose bytes are not UTF-8 (both once decoded to U+FFFD)', () => {
    const bytes = at12(wireName(Buffer.of(0xfe), 'test'), wireName(Buffer.of(0xff), 'test'));
    expect(readNormalisedName(bytes, 12).name).toBe('\\254.test.');
    expect(readNormalisedName(bytes, 20).name).toBe('\\255.test.');
    expect(sameName(bytes, 12, 20)).toBe(false);
  });

  /** Presentation form back to labels: the inverse the escapes must allow. */
  function labelsOf(name: string): number[][] {
    if (name === '.') return [];
    expect(name.endsWith('.')).toBe(true);
    const labels: number[][] = [];
    let label: number[] = [];
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      expect(c).toBeGreaterThan(0x20);
      expect(c).toBeLessThan(0x7f);
      if (c === 0x5c) {
        const next = name.charCodeAt(i + 1);
        if (next >= 0x30 && next <= 0x39) {
          label.push(Number(name.slice(i + 1, i + 4)));
          i += 3;
        } else {
          expect([0x2e, 0x5c]).toContain(next);
          label.push(next);
          i += 1;
        }
      } else if (c === 0x2e) {
        labels.push(label);
        label = [];
      } else label.push(c);
    }
    return labels;
  }
  const lower = (labels: Uint8Array[]) => labels.map((l) => [...l].map((c) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c)));

  // Bytes that matter most, often: the dot, the backslash, digits (as in \DDD), letters of both cases, NUL, 0xff.
  const byte = fc.oneof(fc.constantFrom(0x2e, 0x5c, 0x30, 0x39, 0x41, 0x61, 0x5a, 0x7a, 0x00, 0x20, 0x7f, 0xff), fc.nat(255));
  const label = fc.array(byte, { minLength: 1, maxLength: 12 }).map((b) => Uint8Array.from(b));
  const labels = fc.array(label, { maxLength: 5 });

  it('reads every wire name into a string that gives back its labels, lower-cased (randomised)', () => {
    fc.assert(
      fc.property(labels, (ls) => {
        const { name } = readNormalisedName(at12(wireName(...ls)), 12);
        expect(labelsOf(name)).toEqual(lower(ls));
      }),
      { numRuns: 3000, seed: 20261124 },
    );
  });

  it('finds two wire names equal exactly when their labels are, whatever the dots inside them (randomised)', () => {
    // The second name is often the first with its labels joined at a dot, split at one, or in another case.
    const variant = (ls: Uint8Array[]): fc.Arbitrary<Uint8Array[]> =>
      fc.oneof(
        fc.constant<Uint8Array[]>(ls.map((l) => l.map((c) => (c >= 0x61 && c <= 0x7a ? c - 0x20 : c)))),
        fc.constant<Uint8Array[]>(ls.length > 1 ? [Uint8Array.from([...ls[0]!, 0x2e, ...ls[1]!]), ...ls.slice(2)] : ls),
        fc.constant<Uint8Array[]>(ls.flatMap((l) => Buffer.from(l).toString('latin1').split('.').filter(Boolean).map((s) => Buffer.from(s, 'latin1')))),
        labels,
      );
    const pair = labels.chain((a) => variant(a).map((b) => [a, b] as const));
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const bytes = at12(wireName(...a), wireName(...b));
        const second = 12 + wireName(...a).length;
        const same = JSON.stringify(lower(a)) === JSON.stringify(lower(b));
        expect(sameName(bytes, 12, second)).toBe(same);
        expect(sameName(bytes, second, 12)).toBe(same);
        expect(readNormalisedName(bytes, 12).name === readNormalisedName(bytes, second).name).toBe(same);
      }),
      { numRuns: 3000, seed: 20261124 },
    );
  });
});
