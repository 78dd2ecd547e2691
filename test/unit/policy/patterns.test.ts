import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/util/errors.js';
import { normaliseName } from '../../../src/dns/name.js';
import { Patterns } from '../../../src/policy/patterns.js';

describe('Patterns.match', () => {
  const table: Array<{ patterns: string[]; name: string; allowedBy: string | undefined }> = [
    { patterns: ['example.com'], name: 'example.com', allowedBy: 'example.com' },
    { patterns: ['example.com'], name: 'WWW.example.com', allowedBy: undefined },
    { patterns: ['*.example.com', 'www.example.com.'], name: 'www.example.com', allowedBy: 'www.example.com.' },
    { patterns: ['*.example.com', 'www.example.com.'], name: 'api.example.com', allowedBy: '*.example.com' },
    { patterns: ['*.example.com', 'www.example.com.'], name: 'example.com', allowedBy: undefined },
    { patterns: ['example.com', '**.example.com'], name: 'example.com', allowedBy: 'example.com' },
    { patterns: ['example.com', '**.example.com'], name: 'a.b.example.com', allowedBy: '**.example.com' },
    { patterns: ['example.com', '**.example.com'], name: 'evilexample.com', allowedBy: undefined },
    // Wildcards are tried in the order given.
    { patterns: ['**.example.com', '*.example.com'], name: 'a.example.com', allowedBy: '**.example.com' },
    { patterns: ['*.example.com', '**.example.com'], name: 'a.example.com', allowedBy: '*.example.com' },
    { patterns: ['a.test', 'b.test', 'c.test'], name: 'b.test', allowedBy: 'b.test' },
  ];
  it.each(table)('$patterns: $name → $allowedBy', ({ patterns, name, allowedBy }) => {
    expect(Patterns.compile(patterns).match(normaliseName(name))?.source).toBe(allowedBy);
  });

  it('expects a normalised name: without its trailing dot nothing matches', () => {
    const policy = Patterns.compile(['example.com', '*.example.com']);
    expect(policy.match('example.com')).toBeUndefined();
    expect(policy.match('a.example.com')).toBeUndefined();
  });

  it('allows every name with "*" and --allow-all, and still prefers an exact name', () => {
    const policy = Patterns.compile(['*', 'example.com'], { allowAll: true });
    expect(policy.match('anything.at.all.')?.kind).toBe('all');
    expect(policy.match('.')?.kind).toBe('all');
    expect(policy.match('example.com.')?.source).toBe('example.com');
  });
});

describe('Patterns.compile', () => {
  it('drops the same name given twice, keeping the first spelling and the order', () => {
    const policy = Patterns.compile(['*.example.com', 'www.example.com.', 'WWW.example.com', '*.EXAMPLE.com.', 'a.test']);
    expect(policy.patterns.map((p) => p.source)).toEqual(['*.example.com', 'www.example.com.', 'a.test']);
  });

  it('refuses an empty list with the usage', () => {
    expect(() => Patterns.compile([])).toThrow(ConfigError);
    expect(() => Patterns.compile([])).toThrow(
      'no pattern given: name at least one allowed DNS name, e.g. on-his-name "example.com."',
    );
  });

  it('refuses the whole list when one pattern is bad, naming that pattern', () => {
    expect(() => Patterns.compile(['example.com', 'foo?.com'])).toThrow(ConfigError);
    expect(() => Patterns.compile(['example.com', 'foo?.com'])).toThrow('bad pattern "foo?.com"');
  });

  it('passes --allow-all on to each pattern', () => {
    expect(() => Patterns.compile(['example.com', '**'])).toThrow(/--allow-all/);
    expect(Patterns.compile(['example.com', '**'], { allowAll: true }).patterns.map((p) => p.kind)).toEqual(['exact', 'all']);
  });
});
