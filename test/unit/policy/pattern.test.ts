import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/util/errors.js';
import { normaliseName } from '../../../src/dns/name.js';
import { compilePattern } from '../../../src/policy/pattern.js';
import { seededRandom } from '../../support/framestream.js';

const label63 = 'a'.repeat(63);
// 4 × 63 + 1 = 253 characters without the trailing dot: the longest DNS name.
const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
const name254 = `${label63}.${label63}.${label63}.${'b'.repeat(62)}`;

describe('compilePattern: what a pattern matches', () => {
  // Names are written loosely here (case, trailing dot) and normalised before matching,
  // as the pipeline does with every question name.
  const table: Array<{ pattern: string; accept: string[]; reject: string[] }> = [
    {
      pattern: 'example.com.',
      accept: ['example.com', 'example.com.', 'EXAMPLE.com.', 'Example.Com'],
      reject: ['www.example.com', 'example.co', 'example.com.evil', 'evilexample.com', 'xample.com', '.', 'com'],
    },
    { pattern: 'Example.COM', accept: ['example.com.', 'eXaMpLe.cOm'], reject: ['a.example.com.'] },
    { pattern: 'xn--bcher-kva.example', accept: ['XN--BCHER-KVA.example.'], reject: ['bücher.example'] },
    { pattern: '_dmarc.example.com', accept: ['_DMARC.example.com'], reject: ['dmarc.example.com'] },
    {
      pattern: '*.example.com.',
      accept: ['a.example.com', 'A-B_c.example.com.', `${label63}.example.com`, 'WWW.EXAMPLE.COM'],
      reject: ['example.com', 'a.b.example.com', 'evilexample.com', 'a.evilexample.com', 'a.example.com.evil', '.example.com', 'a.example.org'],
    },
    { pattern: '*.EXAMPLE.com', accept: ['a.example.com.'], reject: ['example.com.'] },
    {
      pattern: 'api-*.example.com',
      accept: ['api-eu.example.com', 'api-.example.com', 'API-EU.example.com', 'api-a-b.example.com'],
      reject: ['api.example.com', 'x.api-eu.example.com', 'api-eu.x.example.com', 'xapi-eu.example.com', 'api-eu.evilexample.com'],
    },
    {
      pattern: '*-cdn.example.com',
      accept: ['eu-cdn.example.com', '-cdn.example.com', 'a-cdn-cdn.example.com'],
      reject: ['cdn.example.com', 'eu-cdn-x.example.com', 'eu.x-cdn.example.com', 'x-cdn.y.example.com'],
    },
    {
      pattern: 'a*b*c.example.com',
      accept: ['abc.example.com', 'axbyc.example.com', 'abbc.example.com', 'abcbc.example.com', 'acbc.example.com'],
      reject: ['ab.example.com', 'acb.example.com', 'abcx.example.com', 'xabc.example.com', 'a.b.c.example.com', 'ab.c.example.com'],
    },
    { pattern: '*-cdn.*.example.com', accept: ['a-cdn.b.example.com'], reject: ['a-cdn.example.com', 'a-cdn.b.c.example.com', 'a.b-cdn.example.com'] },
    { pattern: 'www.*.example.com', accept: ['www.eu.example.com'], reject: ['www.example.com', 'www.a.b.example.com', 'eu.www.example.com'] },
    {
      pattern: '**.example.com.',
      accept: ['a.example.com', 'a.b.c.example.com', 'WWW.Example.COM', `${label63}.${label63}.example.com`],
      reject: ['example.com', 'evilexample.com', 'a.evilexample.com', 'example.com.evil', '.example.com', 'a..example.com', 'a.example.org'],
    },
    { pattern: '**.*.example.com', accept: ['a.b.example.com', 'a.b.c.example.com'], reject: ['a.example.com', 'example.com'] },
    { pattern: '**.api-*.example.com', accept: ['x.api-eu.example.com', 'x.y.api-.example.com'], reject: ['api-eu.example.com', 'x.api.example.com'] },
    { pattern: '*.com', accept: ['example.com'], reject: ['a.example.com', 'com', 'example.org'] },
    { pattern: 'example.*', accept: ['example.org', 'example.com'], reject: ['example', 'a.example.org', 'example.co.uk'] },
    { pattern: name253, accept: [name253, name253.toUpperCase()], reject: [name254, `a.${name253}`] },
  ];
  for (const { pattern, accept, reject } of table) {
    const compiled = compilePattern(pattern);
    it.each(accept)(`${pattern.slice(0, 40)} accepts %s`, (name) => expect(compiled.matches(normaliseName(name))).toBe(true));
    it.each(reject)(`${pattern.slice(0, 40)} rejects %s`, (name) => expect(compiled.matches(normaliseName(name))).toBe(false));
  }

  // A name off the wire escapes what a label may hold but a pattern cannot spell: `\.` (a dot
  // inside a label), `\\`, `\DDD`. A wildcard does not stand for such a label either.
  it.each([
    ['*.example.com', ['evil\\.example.com.', 'a\\032b.example.com.', 'a\\\\.example.com.', 'caf\\195\\169.example.com.']],
    ['**.example.com', ['a\\.b.example.com.', 'x.a\\000.example.com.', '\\..example.com.']],
    ['api-*.example.com', ['api-\\..example.com.', 'api-eu\\.example.com.']],
    ['*.*.com', ['a\\.b.com.', 'a.b\\.c.com.']],
  ])('%s matches no name with an escaped byte', (pattern, names) => {
    for (const name of names) expect(compilePattern(pattern).matches(name)).toBe(false);
  });

  it.each([['*.example.com'], ['**.example.com'], ['a*.example.com'], ['example.com']])(
    '%s never matches a name that is not normalised (no trailing dot)',
    (pattern) => {
      expect(compilePattern(pattern).matches('a.example.com')).toBe(false);
      expect(compilePattern(pattern).matches('example.com')).toBe(false);
    },
  );

  it.each([
    ['example.com', 'exact', 'example.com.'],
    ['Example.COM.', 'exact', 'example.com.'],
    ['*.Example.com', 'wildcard', '*.example.com.'],
    ['**.example.com', 'wildcard', '**.example.com.'],
    ['api-*.example.com', 'wildcard', 'api-*.example.com.'],
  ])('%s is %s, normalised to %s, and keeps its source', (pattern, kind, normalised) => {
    const compiled = compilePattern(pattern);
    expect(compiled).toMatchObject({ source: pattern, kind, normalised });
  });

  it('stays linear on a label that would make a backtracking regex explode', () => {
    const compiled = compilePattern(`${'a*'.repeat(20)}b.example.com`);
    const started = performance.now();
    expect(compiled.matches(`${label63}.example.com.`)).toBe(false);
    expect(compiled.matches(`${'a'.repeat(62)}b.example.com.`)).toBe(true);
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('compilePattern: --allow-all', () => {
  it.each([['*'], ['**'], ['*.'], ['**.']])('%j allows every name', (pattern) => {
    const compiled = compilePattern(pattern, { allowAll: true });
    expect(compiled.kind).toBe('all');
    for (const name of ['.', 'com.', 'anything.at.all.', 'a.b.c.d.e.f.']) expect(compiled.matches(name)).toBe(true);
  });

  it('accepts a pattern with no fixed label, which then matches by its labels', () => {
    const compiled = compilePattern('*.*', { allowAll: true });
    expect(compiled.kind).toBe('wildcard');
    expect(compiled.matches('example.com.')).toBe(true);
    expect(compiled.matches('a.example.com.')).toBe(false);
  });
});

describe('compilePattern: refused patterns', () => {
  it('says what is wrong and how to fix it', () => {
    expect(() => compilePattern('foo?.com')).toThrow(
      new ConfigError(
        `bad pattern "foo?.com": '?' is not pattern syntax; use '*' for one label or '**.' for any depth of subdomain (see README "Pattern syntax")`,
      ),
    );
  });

  const refused: Array<{ pattern: string; because: string }> = [
    { pattern: '', because: 'it is empty' },
    { pattern: '   ', because: 'it is empty' },
    { pattern: '.', because: 'it is empty' },
    { pattern: 'foo?.com', because: `'?' is not pattern syntax` },
    { pattern: '[ab].com', because: `'[' is not pattern syntax` },
    { pattern: 'a].com', because: `']' is not pattern syntax` },
    { pattern: 'ex{a,b}.com', because: `'{' is not pattern syntax` },
    { pattern: 'a+.example.com', because: `'+' is not pattern syntax` },
    { pattern: 'a..b', because: 'empty label' },
    { pattern: '..', because: 'empty label' },
    { pattern: '.example.com', because: 'empty label' },
    { pattern: 'example.com..', because: 'empty label' },
    { pattern: '*..example.com', because: 'empty label' },
    { pattern: 'a**.example.com', because: `'**' may only be the whole leftmost label` },
    { pattern: '**a.example.com', because: `'**' may only be the whole leftmost label` },
    { pattern: '***.example.com', because: `'**' may only be the whole leftmost label` },
    { pattern: 'x.**.example.com', because: `'**' may only be the whole leftmost label` },
    { pattern: 'example.**', because: `'**' may only be the whole leftmost label` },
    { pattern: '**.**.example.com', because: `'**' may only be the whole leftmost label` },
    { pattern: 'exa mple.com', because: `' ' cannot be in a DNS name` },
    { pattern: ' example.com', because: `' ' cannot be in a DNS name` },
    { pattern: 'a\tb.com', because: `'\\t' cannot be in a DNS name` },
    { pattern: 'a=b.com', because: `'=' cannot be in a DNS name; a label holds only letters, digits, '-', '_' and '*'` },
    { pattern: 'bücher.example', because: `'ü' is not ASCII; write an internationalised name in its xn-- (punycode) form` },
    { pattern: '\u212Aelvin.com', because: `'\u212A' is not ASCII` },
    { pattern: 'https://example.com', because: `':' cannot be in a DNS name; give the host name only` },
    { pattern: 'example.com:443', because: `':' cannot be in a DNS name; give the host name only` },
    { pattern: 'example.com/path', because: `'/' cannot be in a DNS name; give the host name only` },
    { pattern: 'a.com,b.com', because: 'give each pattern as its own argument' },
    { pattern: '*', because: '--allow-all' },
    { pattern: '**', because: '--allow-all' },
    { pattern: '*.', because: '--allow-all' },
    { pattern: '**.', because: '--allow-all' },
    { pattern: '*.*', because: 'no label in it is fixed' },
    { pattern: '**.*', because: 'no label in it is fixed' },
    { pattern: '*.*.*', because: 'no label in it is fixed' },
    { pattern: `${'a'.repeat(64)}.com`, because: `is 64 characters long, more than a DNS label's 63` },
    { pattern: `*${'a'.repeat(63)}.com`, because: `more than a DNS label's 63` },
    { pattern: name254, because: `it is 254 characters long, more than a DNS name's 253` },
    { pattern: `${'abcdefghi.'.repeat(26)}com`, because: "more than a DNS name's 253" },
  ];
  it.each(refused)('refuses $pattern: $because', ({ pattern, because }) => {
    let error: unknown;
    try {
      compilePattern(pattern);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message.startsWith(`bad pattern ${JSON.stringify(pattern)}: `)).toBe(true);
    expect(message).toContain(because);
    expect(message).toMatch(/\(see README "Pattern syntax"\)$/);
    expect(message).not.toContain('\n'); // the CLI prints it as one line
  });

  it.each([[`${label63}.com`], [name253], [`*.${label63}.com`]])('accepts the longest label and name: %s', (pattern) => {
    expect(() => compilePattern(pattern)).not.toThrow();
  });
});

describe('compilePattern: randomised', () => {
  it('"*.x.com." matches exactly the names with one more non-empty label; "**.x.com." any number', () => {
    const random = seededRandom(7);
    const alphabet = 'aB-_.9.\\';
    const suffixes = ['.x.com', '.x.com.', 'x.com.', '.xx.com.', '.x.co.', '.x.com.y.'];
    const oneLabel = compilePattern('*.x.com.');
    const anyDepth = compilePattern('**.x.com.');
    for (let i = 0; i < 5000; i++) {
      const prefix = Array.from({ length: Math.floor(random() * 9) }, () => pick(random, alphabet)).join('');
      const suffix = pick(random, suffixes);
      const name = normaliseName(prefix + suffix);
      const labels = name.slice(0, -1).split('.');
      const extra = labels.slice(0, -2);
      const underXCom = labels.length > 2 && labels.at(-2) === 'x' && labels.at(-1) === 'com';
      // A backslash is how a name off the wire escapes a byte no pattern spells: never matched.
      const wellFormed = extra.every((label) => label.length > 0) && !name.includes('\\');
      expect(oneLabel.matches(name), name).toBe(underXCom && wellFormed && extra.length === 1);
      expect(anyDepth.matches(name), name).toBe(underXCom && wellFormed);
    }
  });

  it('agrees with a regular-expression reference on random patterns and names', () => {
    const random = seededRandom(1035);
    const labelGlobs = ['*', 'a', 'ab', 'a*', '*b', 'a*b', '*a*', 'a*a*b', 'b*a', '*-*'];
    let matched = 0;
    for (let i = 0; i < 3000; i++) {
      const depth = 1 + Math.floor(random() * 3);
      const patternLabels = Array.from({ length: depth }, () => pick(random, labelGlobs));
      if (random() < 0.3) patternLabels.unshift('**');
      const pattern = `${patternLabels.join('.')}.x.`;
      const compiled = compilePattern(pattern);
      const reference = referenceRegex(pattern);
      for (let j = 0; j < 20; j++) {
        const body = Array.from({ length: Math.floor(random() * 10) }, () => pick(random, 'aab-..\\')).join('');
        const name = normaliseName(`${body}${random() < 0.8 ? '.x' : ''}`);
        const expected = reference.test(name) && !name.includes('\\');
        if (expected) matched++;
        expect(compiled.matches(name), `${pattern} vs ${name}`).toBe(expected);
      }
    }
    expect(matched).toBeGreaterThan(500); // the names did exercise the accepting side
  });
});

function pick<T>(random: () => number, from: ArrayLike<T>): T {
  return from[Math.floor(random() * from.length)]!;
}

/** The obvious regex for a pattern: fine for short test names, too slow for hostile ones. */
function referenceRegex(pattern: string): RegExp {
  const pieces = pattern
    .slice(0, -1)
    .split('.')
    .map((label) => {
      if (label === '**') return '(?:[^.]+\\.)+';
      const body = label.split('*').map((part) => part.replace(/[-\\^$.*+?()[\]{}|]/g, '\\$&')).join('[^.]*');
      return label === '*' ? '[^.]+\\.' : `${body}\\.`;
    });
  return new RegExp(`^${pieces.join('')}$`);
}
