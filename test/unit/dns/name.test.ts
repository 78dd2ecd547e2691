import { describe, expect, it } from 'vitest';
import { normaliseName } from '../../../src/dns/name.js';
import { seededRandom } from '../../support/framestream.js';

describe('normaliseName', () => {
  it.each([
    ['example.com', 'example.com.'],
    ['example.com.', 'example.com.'],
    ['Example.COM.', 'example.com.'],
    ['EXAMPLE.COM', 'example.com.'],
    ['.', '.'],
    ['', '.'],
    ['A', 'a.'],
    ['_Dmarc.Example.com', '_dmarc.example.com.'],
    ['*.Example.com', '*.example.com.'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseName(input)).toBe(expected);
  });

  // RFC 4343: only A-Z fold. String#toLowerCase would fold all of these.
  it.each([
    ['ÉXAMPLE.com', 'Éxample.com.'],
    ['\u212Aelvin.COM', '\u212Aelvin.com.'], // KELVIN SIGN, which toLowerCase turns into "k"
    ['\u0130stanbul.TR', '\u0130stanbul.tr.'], // LATIN CAPITAL I WITH DOT ABOVE
    ['STRA\u1E9EE.de', 'stra\u1E9Ee.de.'], // CAPITAL SHARP S
  ])('folds ASCII letters only: %j → %j', (input, expected) => {
    expect(normaliseName(input)).toBe(expected);
  });

  it('returns the very same string when it is already normal', () => {
    const name = 'already.normal.';
    expect(normaliseName(name)).toBe(name);
  });

  it.each([['a..'], ['a..b.'], ['..']])('keeps the extra dots of a malformed name %j, so it matches nothing', (name) => {
    expect(normaliseName(name)).toBe(name);
  });

  it('agrees with a character-by-character reference and is idempotent (randomised)', () => {
    const random = seededRandom(4343);
    const alphabet = 'aZz-._9AM\u00c9\u212A';
    const reference = (name: string) => {
      const folded = [...name].map((c) => (c >= 'A' && c <= 'Z' ? c.toLowerCase() : c)).join('');
      return folded.endsWith('.') ? folded : `${folded}.`;
    };
    for (let i = 0; i < 2000; i++) {
      const length = Math.floor(random() * 12);
      const name = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const normal = normaliseName(name);
      expect(normal).toBe(reference(name));
      expect(normaliseName(normal)).toBe(normal);
    }
  });
});
