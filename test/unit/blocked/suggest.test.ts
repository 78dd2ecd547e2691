import { describe, expect, it } from 'vitest';
import { group, suggest, type PolicyPorts } from '../../../src/blocked/suggest.js';
import type { BlockedEntry } from '../../../src/blocked/view.js';

const POLICIES: PolicyPorts[] = [
  { name: 'default', origin: 'default', ports: ['tcp/80', 'tcp/443'] },
  { name: 'ci', origin: 'file', ports: ['tcp/443'] },
];

function entry(over: Partial<BlockedEntry> & { name?: string; allowed?: boolean }): BlockedEntry {
  const { name, allowed = false, ...rest } = over;
  return {
    client: '192.0.2.10',
    container: undefined,
    policy: 'default',
    audit: false,
    address: '198.51.100.7',
    protocol: 'tcp',
    port: 443,
    answer: name === undefined ? undefined : { name, allowed, client: '192.0.2.10', at: 0 },
    count: 1,
    firstSeen: 0,
    lastSeen: 0,
    ...rest,
  };
}

describe('group', () => {
  const of = (...names: string[]) => group(new Map(names.map((n) => [n, 1])));

  it('proposes a name seen alone as it is', () => {
    expect(of('api.stripe.com.')).toEqual([{ pattern: 'api.stripe.com.', names: ['api.stripe.com.'], attempts: 1 }]);
  });

  it('groups siblings one label below the same parent into *.parent., and says which names it covers', () => {
    expect(of('a.cdn.example.com.', 'b.cdn.example.com.')).toEqual([{ pattern: '*.cdn.example.com.', names: ['a.cdn.example.com.', 'b.cdn.example.com.'], attempts: 2 }]);
  });

  it('groups names at several depths below one parent into **.parent.', () => {
    expect(of('a.cdn.example.com.', 'x.y.cdn.example.com.').map((p) => p.pattern)).toEqual(['**.cdn.example.com.']);
  });

  it('groups at the deepest common parent, not above it', () => {
    expect(of('a.eu.example.com.', 'b.eu.example.com.', 'c.us.example.com.', 'd.us.example.com.').map((p) => p.pattern).sort()).toEqual(['*.eu.example.com.', '*.us.example.com.']);
  });

  it('never groups at or above a public suffix, private ones included', () => {
    expect(of('example.com.', 'example.org.').map((p) => p.pattern).sort()).toEqual(['example.com.', 'example.org.']);
    expect(of('a.co.uk.', 'b.co.uk.').map((p) => p.pattern).sort()).toEqual(['a.co.uk.', 'b.co.uk.']);
    expect(of('alice.github.io.', 'bob.github.io.').map((p) => p.pattern).sort()).toEqual(['alice.github.io.', 'bob.github.io.']);
    expect(of('one.example.com.', 'two.example.com.').map((p) => p.pattern)).toEqual(['*.example.com.']);
  });

  it('leaves a name with an escaped dot in a label as it is', () => {
    expect(of('a\\.b.example.com.', 'c.example.com.').map((p) => p.pattern).sort()).toEqual(['a\\.b.example.com.', 'c.example.com.']);
  });

  it('puts the most blocked first', () => {
    expect(group(new Map([['rare.test.', 1], ['often.test.', 9]])).map((p) => p.pattern)).toEqual(['often.test.', 'rare.test.']);
  });
});

describe('suggest', () => {
  it('per policy: denied names as patterns, allowed names tried on another port as ports, hard-coded addresses apart', () => {
    const suggestions = suggest(
      [
        entry({ name: 'tracker.test.', count: 4 }),
        entry({ policy: 'ci', client: '192.0.2.11', name: 'a.npm.example.', count: 2 }),
        entry({ policy: 'ci', client: '192.0.2.11', name: 'b.npm.example.', count: 3 }),
        entry({ policy: 'ci', client: '192.0.2.11', name: 'github.com.', allowed: true, port: 22, count: 2 }),
        entry({ policy: 'ci', client: '192.0.2.11', name: 'github.com.', allowed: true, port: 443 }), // on its port: expired, not a suggestion
        entry({ address: '203.0.113.10', count: 7 }),
        entry({ client: '192.0.2.12', address: '203.0.113.10', count: 1 }),
      ],
      POLICIES,
    );
    expect(suggestions).toEqual([
      { policy: 'default', origin: 'default', audit: false, allow: [{ pattern: 'tracker.test.', names: ['tracker.test.'], attempts: 4 }], ports: [], hardCoded: [{ address: '203.0.113.10', port: 'tcp/443', clients: ['192.0.2.10', '192.0.2.12'], attempts: 8 }] },
      {
        policy: 'ci',
        origin: 'file',
        audit: false,
        allow: [{ pattern: '*.npm.example.', names: ['a.npm.example.', 'b.npm.example.'], attempts: 5 }],
        ports: [{ port: 'tcp/22', names: ['github.com.'], attempts: 2 }],
        hardCoded: [],
      },
    ]);
  });

  it('says nothing for nothing blocked', () => {
    expect(suggest([], POLICIES)).toEqual([]);
  });
});
