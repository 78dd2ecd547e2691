import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { normaliseName } from '../../../src/policy/name.js';
import { compilePattern } from '../../../src/policy/pattern.js';
import { Policy } from '../../../src/policy/policy.js';
import { seededRandom } from '../../support/framestream.js';

describe('normaliseName', () => {
  it.each([
    ['example.com', 'example.com.'],
    ['Example.COM.', 'example.com.'],
    ['example.com.', 'example.com.'],
    ['.', '.'],
    ['ÉXAMPLE.com', 'Éxample.com.'], // only ASCII letters fold (RFC 4343)
  ])('%s → %s', (input, expected) => {
    expect(normaliseName(input)).toBe(expected);
  });

  it('returns the very same string when it is already normal', () => {
    const name = 'already.normal.';
    expect(normaliseName(name)).toBe(name);
  });
});

describe('compilePattern', () => {
  const table: Array<{ pattern: string; accept: string[]; reject: string[] }> = [
    { pattern: 'example.com.', accept: ['example.com', 'EXAMPLE.com.'], reject: ['www.example.com', 'example.co', 'example.com.evil'] },
    { pattern: 'Example.Com', accept: ['example.com.'], reject: ['a.example.com.'] },
    { pattern: '*.example.com.', accept: ['a.example.com', 'A-B_c.example.com.'], reject: ['example.com', 'a.b.example.com', 'evilexample.com', 'a.example.com.evil', '.example.com'] },
    { pattern: 'api-*.example.com', accept: ['api-eu.example.com', 'api-.example.com'], reject: ['api.example.com', 'x.api-eu.example.com', 'api-eu.x.example.com'] },
    { pattern: '*-cdn.*.example.com', accept: ['a-cdn.b.example.com'], reject: ['a-cdn.example.com', 'a-cdn.b.c.example.com'] },
    { pattern: '**.example.com.', accept: ['a.example.com', 'a.b.c.example.com'], reject: ['example.com', 'evilexample.com', 'a.evilexample.com', 'example.com.evil'] },
    { pattern: '*.com', accept: ['example.com'], reject: ['a.example.com', 'com'] },
  ];
  for (const { pattern, accept, reject } of table) {
    const compiled = compilePattern(pattern);
    it.each(accept)(`${pattern} accepts %s`, (name) => expect(compiled.matches(normaliseName(name))).toBe(true));
    it.each(reject)(`${pattern} rejects %s`, (name) => expect(compiled.matches(normaliseName(name))).toBe(false));
  }

  it.each([
    ['', /empty/],
    ['.', /empty/],
    ['foo?.com', /"\?" is not pattern syntax/],
    ['[ab].com', /"\[" is not pattern syntax/],
    ['a..example.com', /empty label/],
    ['.example.com', /empty label/],
    ['example.com..', /empty label/],
    ['a**.example.com', /'\*\*' may only be the whole leftmost label/],
    ['x.**.example.com', /'\*\*' may only be the whole leftmost label/],
    ['exa mple.com', /" " is not pattern syntax/],
    ['*', /--allow-all/],
    ['**', /--allow-all/],
    [`${'a'.repeat(64)}.com`, /longer than 63/],
    [`${'abcdefghi.'.repeat(26)}com`, /longer than 253/],
  ])('refuses %j, naming it and the fix', (pattern, message) => {
    expect(() => compilePattern(pattern)).toThrow(ConfigError);
    expect(() => compilePattern(pattern)).toThrow(message);
    expect(() => compilePattern(pattern)).toThrow(`bad pattern ${JSON.stringify(pattern)}`);
  });

  it('matches every name with --allow-all', () => {
    expect(compilePattern('*', { allowAll: true }).matches('anything.at.all.')).toBe(true);
    expect(compilePattern('**.', { allowAll: true }).kind).toBe('all');
  });

  it('never lets "*" cross a dot (randomised)', () => {
    const random = seededRandom(7);
    const alphabet = 'abc-_.';
    const oneLabel = compilePattern('*.x.com.');
    const anyDepth = compilePattern('**.x.com.');
    for (let i = 0; i < 2000; i++) {
      const prefix = Array.from({ length: 1 + Math.floor(random() * 8) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const name = `${prefix}.x.com.`;
      const labels = prefix.split('.');
      const nonEmpty = labels.every((l) => l.length > 0);
      expect(oneLabel.matches(name)).toBe(nonEmpty && labels.length === 1);
      expect(anyDepth.matches(name)).toBe(nonEmpty);
    }
  });
});

describe('Policy', () => {
  it('says which pattern allowed a name, exact names first', () => {
    const policy = Policy.compile(['*.example.com', 'www.example.com.', 'WWW.example.com']);
    expect(policy.patterns.map((p) => p.source)).toEqual(['*.example.com', 'www.example.com.']);
    expect(policy.match('www.example.com.')?.source).toBe('www.example.com.');
    expect(policy.match('api.example.com.')?.source).toBe('*.example.com');
    expect(policy.match('example.com.')).toBeUndefined();
  });

  it('refuses an empty list with the usage', () => {
    expect(() => Policy.compile([])).toThrow(/no pattern given.*on-his-name "example.com."/);
  });
});
