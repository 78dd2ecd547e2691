/**
 * The policy file's schema: every field read, every mistake refused whole with FILE:LINE
 * and the reason. One table for the errors (CoreDNS's {in, fail} shape), each case's line
 * being where the mistake is, not where the YAML around it starts.
 */
import { describe, expect, it } from 'vitest';
import { POLICY_NAME, PolicyFileError, parsePolicyFile } from '../../../src/policy/policy-file.js';
import { ConfigError } from '../../../src/util/errors.js';

const FILE = '/etc/on-his-name/policies.yaml';
const lines = (...text: string[]) => `${text.join('\n')}\n`;
const failure = (text: string, options = {}): PolicyFileError => {
  try {
    parsePolicyFile(text, FILE, options);
  } catch (err) {
    return err as PolicyFileError;
  }
  throw new Error('parsePolicyFile accepted it');
};

describe('parsePolicyFile reads', () => {
  it('every field of the example in the issue', () => {
    const text = lines(
      'allow: ["example.com."]            # joins the command-line patterns: the default policy',
      'ports: [80, 443]                   # ports for every policy that names none',
      'policies:',
      '  ci:',
      '    allow: ["github.com.", "*.github.com.", "registry.npmjs.org."]',
      '    ports: [443, 22]',
      '    clients: ["172.18.0.16/28"]',
    );
    expect(parsePolicyFile(text, FILE)).toEqual({
      allow: ['example.com.'],
      ports: [{ protocol: 'tcp', port: 80 }, { protocol: 'tcp', port: 443 }],
      policies: [
        {
          name: 'ci',
          allow: ['github.com.', '*.github.com.', 'registry.npmjs.org.'],
          ports: [{ protocol: 'tcp', port: 443 }, { protocol: 'tcp', port: 22 }],
          clients: ['172.18.0.16/28'],
          audit: false,
        },
      ],
      audit: false,
    });
  });

  it('ports as 443, "443", tcp/443 and udp/443, the protocol in any case', () => {
    const text = lines('ports: [443, "8443", tcp/22, udp/443, "UDP/123"]');
    expect(parsePolicyFile(text, FILE).ports).toEqual([
      { protocol: 'tcp', port: 443 },
      { protocol: 'tcp', port: 8443 },
      { protocol: 'tcp', port: 22 },
      { protocol: 'udp', port: 443 },
      { protocol: 'udp', port: 123 },
    ]);
  });

  it('a policy without ports as having none of its own (the top-level ports or --ports apply)', () => {
    const parsed = parsePolicyFile(lines('policies:', '  web:', '    allow: [api.stripe.com.]'), FILE);
    expect(parsed.policies).toEqual([{ name: 'web', allow: ['api.stripe.com.'], clients: [], audit: false }]);
    expect('ports' in parsed.policies[0]!).toBe(false);
    expect('ports' in parsed).toBe(false);
  });

  it('policies in the order written, each with its clients as addresses or ranges of either family', () => {
    const text = lines(
      'policies:',
      '  web: {allow: [a.test.], clients: ["172.18.0.5", "fd00:18::/64"]}',
      '  ci: {allow: [b.test.], clients: ["172.18.0.16/28"]}',
      '  batch: {allow: []}',
    );
    expect(parsePolicyFile(text, FILE).policies.map((p) => [p.name, p.clients])).toEqual([
      ['web', ['172.18.0.5', 'fd00:18::/64']],
      ['ci', ['172.18.0.16/28']],
      ['batch', []],
    ]);
  });

  it('an empty file, a file of comments and an empty mapping as no policy and nothing more allowed', () => {
    for (const text of ['', '# nothing yet\n', '{}\n', '---\n']) expect(parsePolicyFile(text, FILE)).toEqual({ allow: [], audit: false, policies: [] });
  });

  it('a policy that allows nothing (it opens nothing for its clients), and one with allow left out', () => {
    expect(parsePolicyFile(lines('policies:', '  quiet: {allow: []}', '  silent: {clients: ["10.9.0.0/16"]}'), FILE).policies).toEqual([
      { name: 'quiet', allow: [], clients: [], audit: false },
      { name: 'silent', allow: [], clients: ['10.9.0.0/16'], audit: false },
    ]);
  });

  it('"*" only with --allow-all, as on the command line', () => {
    expect(failure(lines('allow: ["*"]')).message).toMatch(/--allow-all/);
    expect(parsePolicyFile(lines('allow: ["*"]'), FILE, { allowAll: true }).allow).toEqual(['*']);
  });

  it('audit mode at the top (the default policy) and per policy, true or false only', () => {
    const parsed = parsePolicyFile(lines('audit: true', 'policies:', '  ci: {allow: [a.test.], audit: true}', '  web: {allow: [b.test.], audit: false}'), FILE);
    expect([parsed.audit, ...parsed.policies.map((p) => p.audit)]).toEqual([true, true, false]);
    expect(failure(lines('policies:', '  ci: {audit: yes please}')).message).toBe(`${FILE}:2: policy ci: audit must be true or false`);
  });

  it('the same client range twice in one policy (one policy claims it, however often)', () => {
    expect(parsePolicyFile(lines('policies:', '  ci: {clients: ["172.18.0.16/28", "172.18.0.16/29"]}'), FILE).policies[0]!.clients).toHaveLength(2);
  });
});

describe('parsePolicyFile refuses, with FILE:LINE: reason', () => {
  const table: Array<{ what: string; text: string; fail: string | RegExp }> = [
    {
      what: 'a key it does not know at the top',
      text: lines('allow: [a.test.]', 'polices:', '  ci: {allow: [b.test.]}'),
      fail: `${FILE}:2: unknown key "polices" at the top: expected allow, ports, audit, policies`,
    },
    {
      what: 'a key it does not know in a policy',
      text: lines('policies:', '  ci:', '    allow: [b.test.]', '    client: ["172.18.0.0/24"]'),
      fail: `${FILE}:4: unknown key "client" in policy ci: expected allow, ports, clients, audit`,
    },
    {
      what: 'a bad pattern, on the line of that pattern',
      text: lines('policies:', '  ci:', '    allow:', '      - github.com.', '      - "foo?.com"'),
      fail: new RegExp(`^${FILE}:5: bad pattern "foo\\?\\.com": '\\?' is not pattern syntax`),
    },
    {
      what: 'a bad pattern in the top-level allow',
      text: lines('allow:', '  - a.test.', '  - "https://a.test/"'),
      fail: new RegExp(`^${FILE}:3: bad pattern "https://a.test/"`),
    },
    {
      what: 'a port out of range',
      text: lines('policies:', '  ci:', '    ports: [443, 70000]'),
      fail: `${FILE}:3: policy ci: ports "70000" is not a port from 1 to 65535, optionally with its protocol: 443, tcp/443, udp/443`,
    },
    {
      what: 'a port of another protocol',
      text: lines('ports: [sctp/443]'),
      fail: `${FILE}:1: ports "sctp/443" is not a port from 1 to 65535, optionally with its protocol: 443, tcp/443, udp/443`,
    },
    {
      what: 'port 0',
      text: lines('ports:', '  - 0'),
      fail: new RegExp(`^${FILE}:2: ports "0" is not a port`),
    },
    {
      what: 'an empty ports list (leave it out instead)',
      text: lines('policies:', '  ci:', '    ports: []'),
      fail: `${FILE}:3: policy ci: ports is empty: name at least one port, or leave it out`,
    },
    {
      what: 'a client that is not a range',
      text: lines('policies:', '  ci:', '    clients:', '      - 172.18.0.0/33'),
      fail: new RegExp(`^${FILE}:4: policy ci: clients "172.18.0.0/33" is not an IPv4 or IPv6 range`),
    },
    {
      what: 'a client given as a host name',
      text: lines('policies:', '  ci: {clients: [runner.local]}'),
      fail: new RegExp(`^${FILE}:2: policy ci: clients "runner.local" is not an IPv4 or IPv6 range`),
    },
    {
      what: "a client range that overlaps another policy's, on the line of the second",
      text: lines('policies:', '  ci:', '    clients: ["172.18.0.16/28"]', '  web:', '    clients:', '      - 172.18.0.0/24'),
      fail: `${FILE}:6: policy web: clients 172.18.0.0/24 overlaps 172.18.0.16/28 of policy ci: a client belongs to one policy`,
    },
    {
      what: 'a client address inside another policy\'s range',
      text: lines('policies:', '  ci: {clients: ["172.18.0.16/28"]}', '  web: {clients: ["172.18.0.20"]}'),
      fail: `${FILE}:3: policy web: clients 172.18.0.20 overlaps 172.18.0.16/28 of policy ci: a client belongs to one policy`,
    },
    {
      what: 'allow as a string rather than a list',
      text: lines('policies:', '  ci:', '    allow: github.com.'),
      fail: `${FILE}:3: policy ci: allow must be a list, e.g. ["example.com."]`,
    },
    {
      what: 'a list item that is a mapping',
      text: lines('allow:', '  - a.test.', '  - {name: b.test.}'),
      fail: `${FILE}:3: allow: each item must be a string`,
    },
    {
      what: 'a list item that is null',
      text: lines('allow: [a.test., ~]'),
      fail: `${FILE}:1: allow: each item must be a string`,
    },
    {
      what: 'policies as a list',
      text: lines('allow: [a.test.]', 'policies:', '  - ci'),
      fail: `${FILE}:3: policies must be a mapping of names to policies`,
    },
    {
      what: 'a policy that is not a mapping',
      text: lines('policies:', '  ci: [github.com.]'),
      fail: `${FILE}:2: policy ci must be a mapping with allow, and optionally ports, clients and audit`,
    },
    {
      what: 'a policy with nothing under it',
      text: lines('policies:', '  ci:'),
      fail: `${FILE}:2: policy ci must be a mapping with allow, and optionally ports, clients and audit`,
    },
    {
      what: 'a file that is a list',
      text: lines('- a.test.'),
      fail: `${FILE}:1: the file must be a mapping with allow, ports and policies (see docs/policies.md)`,
    },
    {
      what: 'a file that is one word',
      text: lines('', 'a.test.'),
      fail: `${FILE}:2: the file must be a mapping with allow, ports and policies (see docs/policies.md)`,
    },
    {
      what: 'the same policy twice (YAML refuses a repeated key)',
      text: lines('policies:', '  ci: {allow: [a.test.]}', '  ci: {allow: [b.test.]}'),
      fail: `${FILE}:3: not valid YAML: Map keys must be unique`,
    },
    {
      what: 'YAML that does not parse, on the line where it breaks',
      text: lines('allow: [a.test.]', 'policies:', '  ci:', '    allow: [unclosed', 'ports: [443]'),
      fail: new RegExp(`^${FILE}:\\d+: not valid YAML: `),
    },
    {
      what: 'tabs for indentation',
      text: lines('policies:', '\tci: {allow: [a.test.]}'),
      fail: `${FILE}:2: not valid YAML: Tabs are not allowed as indentation`,
    },
    {
      what: 'two documents in one file (the second would be silently ignored)',
      text: lines('allow: [a.test.]', '---', 'allow: [b.test.]'),
      fail: new RegExp(`^${FILE}:\\d+: not valid YAML: Source contains multiple documents`),
    },
  ];

  it.each(table)('$what', ({ text, fail }) => {
    const err = failure(text);
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err).toBeInstanceOf(ConfigError); // the CLI prints it as one line, exit 2
    if (typeof fail === 'string') expect(err.message).toBe(fail);
    else expect(err.message).toMatch(fail);
    expect(err.message).not.toContain('\n');
  });

  it('a YAML syntax error names a line, as every other mistake does: where the parser found it', () => {
    expect(failure(lines('policies:', '  ci: {allow: [a.test.]}', '  ci: {allow: [b.test.]}')).line).toBe(3);
    expect(failure(lines('allow: [a.test.]', 'policies:', '  ci: {}', ' web: {}')).line).toBe(4);
    expect(failure(lines('allow: [a.test.]', 'ports: [443', 'policies: {}')).line).toBe(3); // the list was still open there
  });

  it('keeps the file, the line and the reason apart for callers', () => {
    const err = failure(lines('policies:', '  ci:', '    allow: [bad..name.]'));
    expect(err).toMatchObject({ file: FILE, line: 3 });
    expect(err.reason).toMatch(/^bad pattern "bad\.\.name\.": it has an empty label/);
  });

  it('refuses the first mistake of several, so a fix is checked again whole', () => {
    const err = failure(lines('allow: ["bad?"]', 'policies:', '  Bad: {}'));
    expect(err.line).toBe(3); // policies are read before the top-level allow
  });
});

describe('policy names', () => {
  it.each(['ci', 'web-app', 'build_2', 'a', 'a'.repeat(22)])('takes %j', (name) => {
    expect(parsePolicyFile(lines('policies:', `  ${name}: {allow: [a.test.]}`), FILE).policies[0]!.name).toBe(name);
  });

  it.each([
    ['CI', 'upper case'],
    ['2fast', 'a digit first'],
    ['-ci', 'a dash first'],
    ['web app', 'a space'],
    ['web.app', 'a dot'],
    ['a'.repeat(23), 'longer than the kernel names leave room for'],
    ['ci;DROP', 'iptables-restore syntax'],
    ['"ci\\n-A FORWARD -j ACCEPT"', 'a new line, to smuggle a rule into iptables-restore'],
    ['café', 'non-ASCII'],
  ])('refuses %j (%s), on its line', (name, _why) => {
    const err = failure(lines('allow: [a.test.]', 'policies:', `  ${name}: {allow: [a.test.]}`));
    expect(err.line).toBe(3);
    expect(err.reason).toMatch(/cannot name a policy: lower-case letters, digits/);
  });

  it.each(['default', 'refused', 'c-abc', 'c-0123456789ab', 'c-'])('refuses %j: the daemon gives that name itself', (name) => {
    const err = failure(lines('policies:', `  ${name}: {allow: [a.test.]}`));
    expect(err.message).toBe(
      `${FILE}:2: "${name}" cannot name a policy: lower-case letters, digits, "-" and "_", starting with a letter, at most 22, and not "default", "refused" or "c-…" (a container's own)`,
    );
  });

  it('takes names that merely start like a reserved one', () => {
    const text = lines('policies:', '  defaults: {}', '  refused-ci: {}', '  cache: {}', '  c_1: {}');
    expect(parsePolicyFile(text, FILE).policies.map((p) => p.name)).toEqual(['defaults', 'refused-ci', 'cache', 'c_1']);
  });

  it.each([
    ['an empty key', lines('policies:', '  : {allow: [a.test.]}')],
    ['a null key', lines('policies:', '  ~: {allow: [a.test.]}')],
    ['an alias as the key', lines('allow: [&n ci]', 'policies:', '  *n : {allow: [a.test.]}')],
    ['a mapping as the key', lines('policies:', '  ? {a: b}', '  : {allow: [a.test.]}')],
    ['a boolean key', lines('policies:', '  true: {allow: [a.test.]}')],
  ])('refuses %s: a policy is named by a plain word, never by what YAML makes of something else', (_what, text) => {
    const err = failure(text);
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err.reason).toMatch(/cannot name a policy/);
    expect(err.line).toBeGreaterThanOrEqual(2);
  });

  it('POLICY_NAME leaves room for the kernel objects: OHN-P-NAME within 28, ohn-p-NAME-v6 within 31', () => {
    const longest = 'a'.repeat(22);
    expect(POLICY_NAME.test(longest)).toBe(true);
    expect(`OHN-P-${longest}`.length).toBeLessThanOrEqual(28);
    expect(`ohn-p-${longest}-v6`.length).toBeLessThanOrEqual(31);
  });
});

describe('hostile files', () => {
  it('refuses a billion-laughs file at once: aliases are never expanded', () => {
    let text = 'allow: &a0 ["x.test."]\npolicies:\n';
    for (let i = 1; i < 40; i++) text += `  p${i}:\n    allow: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    const started = performance.now();
    const err = failure(text);
    expect(err.message).toBe(`${FILE}:4: policy p1: allow: each item must be a string`);
    // 10^39 patterns if expanded; refused having read only the text (generously bounded for a slow CI machine).
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('refuses an alias standing for a whole list, and a merge key', () => {
    expect(failure(lines('allow: &a [a.test.]', 'policies:', '  ci:', '    allow: *a')).message).toBe(`${FILE}:4: policy ci: allow must be a list, e.g. ["example.com."]`);
    expect(failure(lines('policies:', '  base: &b {allow: [a.test.]}', '  ci:', '    <<: *b')).message).toBe(
      `${FILE}:4: unknown key "<<" in policy ci: expected allow, ports, clients, audit`,
    );
  });

  it('reads a large file in one piece, its last mistake on its own line', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => `  - n${i}.example.com.`);
    expect(parsePolicyFile(`allow:\n${many.join('\n')}\n`, FILE).allow).toHaveLength(20_000);
    expect(failure(`allow:\n${many.join('\n')}\n  - "bad name"\n`).line).toBe(20_002);
  });

  it('refuses client ranges covering everything when another policy has a client, whichever comes first', () => {
    const all = failure(lines('policies:', '  ci: {clients: ["0.0.0.0/0"]}', '  web: {clients: ["172.18.0.5"]}'));
    expect(all.message).toBe(`${FILE}:3: policy web: clients 172.18.0.5 overlaps 0.0.0.0/0 of policy ci: a client belongs to one policy`);
    const six = failure(lines('policies:', '  web: {clients: ["fd00::5"]}', '  ci: {clients: ["::/0"]}'));
    expect(six.message).toBe(`${FILE}:3: policy ci: clients ::/0 overlaps fd00::5 of policy web: a client belongs to one policy`);
  });

  it('takes one policy claiming every IPv4 client: every client without a container policy then has it, not the default', () => {
    expect(parsePolicyFile(lines('policies:', '  everyone: {allow: [a.test.], clients: ["0.0.0.0/0", "::/0"]}'), FILE).policies[0]!.clients).toEqual(['0.0.0.0/0', '::/0']);
  });
});
