import { describe, expect, it } from 'vitest';
import type { BlockedListView, PoliciesView } from '../../../src/admin/api.js';
import { renderSuggestions } from '../../../src/admin/suggestions.js';
import { renderBlocked } from '../../../src/admin/table.js';
import type { Suggestion } from '../../../src/blocked/suggest.js';

const NOW = Date.parse('2026-11-30T10:00:00.000Z');
const BLOCKED: BlockedListView = {
  enabled: true,
  bound: 10_000,
  blocked: [
    { client: '192.0.2.10', container: 'web', policy: 'default', audit: false, address: '198.51.100.7', protocol: 'tcp', port: 443, name: 'tracker.test.', nameAllowed: false, count: 4, firstSeen: '2026-11-30T09:58:00.000Z', lastSeen: '2026-11-30T09:59:50.000Z' },
    { client: '192.0.2.11', container: null, policy: 'ci', audit: true, address: '203.0.113.10', protocol: 'udp', port: 123, name: null, nameAllowed: null, count: 1, firstSeen: '2026-11-30T09:00:00.000Z', lastSeen: '2026-11-30T09:00:00.000Z' },
  ],
};

describe('the BLOCKED table of on-his-name status', () => {
  it('shows who tried what, the name that led there (or that none did), how often and how long ago', () => {
    expect(renderBlocked(BLOCKED, NOW)).toEqual([
      '           BLOCKED  CLIENT      CONTAINER  POLICY   DESTINATION   PORT     NAME                                 COUNT',
      '           10s ago  192.0.2.10  web        default  198.51.100.7  tcp/443  tracker.test. (denied)                   4',
      '1h 00m ago (audit)  192.0.2.11  -          ci       203.0.113.10  udp/123  no DNS answer: a hard-coded address      1',
    ]);
  });

  it('says when nothing was blocked, and how many rows it left out', () => {
    expect(renderBlocked({ ...BLOCKED, blocked: [] }, NOW)).toEqual(['Nothing blocked yet.']);
    const many = { ...BLOCKED, blocked: Array.from({ length: 25 }, () => BLOCKED.blocked[0]!) };
    expect(renderBlocked(many, NOW).at(-1)).toBe('5 more in /api/blocked (on-his-name suggest turns them into patterns).');
  });
});

describe('on-his-name suggest', () => {
  const policies: PoliciesView = {
    file: '/etc/on-his-name/policies.yaml',
    reload: null,
    policies: [
      { name: 'default', origin: 'default', audit: false, patterns: ['example.com.'], ports: ['tcp/80', 'tcp/443'], clients: [], containers: [] },
      { name: 'ci', origin: 'file', audit: true, patterns: ['github.com.'], ports: ['tcp/443'], clients: ['192.0.2.16/28'], containers: [] },
    ],
  };
  const suggestions: Suggestion[] = [
    { policy: 'default', origin: 'default', audit: false, allow: [{ pattern: 'tracker.test.', names: ['tracker.test.'], attempts: 4 }], ports: [], hardCoded: [{ address: '203.0.113.10', port: 'tcp/443', clients: ['192.0.2.10'], attempts: 7 }] },
    {
      policy: 'ci',
      origin: 'file',
      audit: true,
      allow: [{ pattern: '*.npm.example.', names: ['a.npm.example.', 'b.npm.example.'], attempts: 5 }],
      ports: [{ port: 'tcp/22', names: ['github.com.'], attempts: 2 }],
      hardCoded: [],
    },
    { policy: 'c-0123456789ab', origin: 'label', audit: false, allow: [{ pattern: 'x.test.', names: ['x.test.'], attempts: 1 }], ports: [], hardCoded: [] },
  ];

  it('prints policy-file lines to paste, each saying what it rests on', () => {
    expect(renderSuggestions(suggestions, policies)).toBe(
      [
        '# on-his-name suggest: what was blocked, as policy-file lines to review before they go in.',
        '# A wildcard covers more names than the ones seen (listed beside it): keep it only if that is meant.',
        '',
        "# The default policy (every client without a policy of its own): the file's top level.",
        'allow:',
        '  - "tracker.test."  # 4 packets blocked',
        '',
        'policies:',
        '  ci:  # in audit mode',
        '    allow:',
        '      - "*.npm.example."  # seen: a.npm.example., b.npm.example.; 5 packets blocked',
        '    ports: ["tcp/443", "tcp/22"]  # added: tcp/22 (github.com. tried on it, 2 packets blocked)',
        '',
        "# A container's own policy comes from its label on-his-name.allow: add these there.",
        '#   c-0123456789ab: x.test.',
        '',
        '# Hard-coded addresses: no DNS answer named them, so no pattern can open them.',
        '#   default: 192.0.2.10 -> 203.0.113.10 tcp/443 (7 packets blocked)',
        '',
      ].join('\n'),
    );
  });

  it('says there is nothing to suggest when nothing was blocked', () => {
    expect(renderSuggestions([], policies)).toBe('# Nothing blocked yet: nothing to suggest.\n');
  });
});
