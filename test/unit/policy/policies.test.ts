/**
 * PolicySet: the command line, the file and a container's labels in, compiled policies out.
 * The rule that matters most: a label that cannot be honoured gives the refusing policy,
 * which opens nothing, never the default (a typo must not widen what a service reaches).
 */
import { describe, expect, it } from 'vitest';
import { normaliseName } from '../../../src/dns/name.js';
import type { PortSpec } from '../../../src/firewall/rules.js';
import { DEFAULT_POLICY, LABELS, PolicySet, REFUSED_POLICY, type Policy } from '../../../src/policy/policies.js';
import { parsePolicyFile } from '../../../src/policy/policy-file.js';
import { ConfigError } from '../../../src/util/errors.js';

const TCP = (port: number): PortSpec => ({ protocol: 'tcp', port });
const UDP = (port: number): PortSpec => ({ protocol: 'udp', port });
const CLI_PORTS = [TCP(80), TCP(443)];
const ID = '0123456789abcdef'.repeat(4);
const FILE = parsePolicyFile(
  ['allow: ["example.com."]', 'policies:', '  ci:', '    allow: ["github.com.", "*.github.com."]', '    ports: [443, 22]', '    clients: ["172.18.0.16/28"]', '  web:', '    allow: ["api.stripe.com."]'].join('\n'),
  'policies.yaml',
);
const set = (options = {}) => PolicySet.compile(['allowed.test.'], CLI_PORTS, FILE, options);
const allows = (policy: Policy | undefined, name: string) => policy?.patterns.match(normaliseName(name)) !== undefined;

describe('PolicySet.compile', () => {
  it('makes the default policy of the command-line patterns and the file\'s top-level allow, on --ports', () => {
    const { defaultPolicy } = set();
    expect(defaultPolicy).toMatchObject({ name: DEFAULT_POLICY, origin: 'default', ports: CLI_PORTS, clients: [] });
    expect(defaultPolicy.patterns.patterns.map((p) => p.source)).toEqual(['allowed.test.', 'example.com.']);
  });

  it("gives the file's policies their own patterns, ports and clients, and --ports to one that names none", () => {
    const { named } = set();
    expect([...named.keys()]).toEqual(['ci', 'web']);
    expect(named.get('ci')).toMatchObject({ origin: 'file', ports: [TCP(443), TCP(22)], clients: ['172.18.0.16/28'] });
    expect(named.get('web')).toMatchObject({ origin: 'file', ports: CLI_PORTS, clients: [] });
    expect(allows(named.get('ci'), 'api.github.com')).toBe(true);
    expect(allows(named.get('ci'), 'allowed.test')).toBe(false); // the default's patterns are the default's only
    expect(allows(named.get('web'), 'github.com')).toBe(false);
  });

  it("puts the file's top-level ports in place of --ports, for the default and every policy without its own", () => {
    const file = parsePolicyFile('ports: [udp/443, 8443]\npolicies:\n  web: {allow: [a.test.]}\n  ci: {ports: [22]}\n', 'p.yaml');
    const policies = PolicySet.compile(['allowed.test.'], CLI_PORTS, file);
    expect(policies.defaultPolicy.ports).toEqual([UDP(443), TCP(8443)]);
    expect(policies.named.get('web')!.ports).toEqual([UDP(443), TCP(8443)]);
    expect(policies.named.get('ci')!.ports).toEqual([TCP(22)]);
  });

  it('lists the default policy first, then the file\'s in order', () => {
    expect(set().all.map((p) => p.name)).toEqual(['default', 'ci', 'web']);
  });

  it('needs a pattern without a file, as always; with a file the default may allow nothing', () => {
    expect(() => PolicySet.compile([], CLI_PORTS, undefined)).toThrow(ConfigError);
    const empty = PolicySet.compile([], CLI_PORTS, parsePolicyFile('policies:\n  ci: {allow: [a.test.]}\n', 'p.yaml'));
    expect(empty.defaultPolicy.patterns.patterns).toEqual([]);
    expect(empty.defaultPolicy.patterns.match('anything.test.')).toBeUndefined();
  });

  it('refuses "*" on the command line without --allow-all even when the file is fine', () => {
    expect(() => PolicySet.compile(['*'], CLI_PORTS, FILE)).toThrow(/--allow-all/);
    expect(PolicySet.compile(['*'], CLI_PORTS, FILE, { allowAll: true }).defaultPolicy.patterns.match('anything.test.')?.kind).toBe('all');
  });
});

describe('PolicySet.forLabels', () => {
  it('is undefined for a container without any of our labels: it gets what its address gets', () => {
    expect(set().forLabels({}, ID)).toBeUndefined();
    expect(set().forLabels({ 'com.docker.compose.service': 'web', 'on-his-name': 'x', 'on-his-name-policy': 'ci' }, ID)).toBeUndefined();
  });

  it('gives the policy of the file that on-his-name.policy names, the very same object', () => {
    const policies = set();
    expect(policies.forLabels({ [LABELS.policy]: 'ci' }, ID)).toBe(policies.named.get('ci'));
  });

  it('gives a container its own policy for on-his-name.allow, named c- and the short id, on the default ports', () => {
    const own = set().forLabels({ [LABELS.allow]: 'api.stripe.com. *.stripe.network.' }, ID)!;
    expect(own).toMatchObject({ name: 'c-0123456789ab', origin: 'label', ports: CLI_PORTS, clients: [] });
    expect(own.patterns.patterns.map((p) => p.source)).toEqual(['api.stripe.com.', '*.stripe.network.']);
    expect(allows(own, 'js.stripe.network')).toBe(true);
    expect(allows(own, 'allowed.test')).toBe(false); // not the default's patterns as well
  });

  it('splits on-his-name.allow on spaces, commas, tabs and new lines alike', () => {
    const own = set().forLabels({ [LABELS.allow]: ' a.test.,b.test.\tc.test.\n d.test. ,, ' }, ID)!;
    expect(own.patterns.patterns.map((p) => p.source)).toEqual(['a.test.', 'b.test.', 'c.test.', 'd.test.']);
  });

  it('takes on-his-name.ports with the allow label, TCP or UDP, each once', () => {
    const own = set().forLabels({ [LABELS.allow]: 'a.test.', [LABELS.ports]: '443, udp/443,443' }, ID)!;
    expect(own.ports).toEqual([TCP(443), UDP(443)]);
  });

  it("gives an allow label the file's top-level ports when it names none", () => {
    const file = parsePolicyFile('ports: [8443]\n', 'p.yaml');
    expect(PolicySet.compile(['a.test.'], CLI_PORTS, file).forLabels({ [LABELS.allow]: 'b.test.' }, ID)!.ports).toEqual([TCP(8443)]);
  });

  it('ignores on-his-name.ports on a container that names a policy of the file: the file says its ports', () => {
    expect(set().forLabels({ [LABELS.policy]: 'ci', [LABELS.ports]: '1-65535' }, ID)!.ports).toEqual([TCP(443), TCP(22)]);
  });

  it('gives the default policy to a container that names "default": its labels may pick any policy, and this is the one that is everyone\'s', () => {
    const policies = set();
    expect(policies.forLabels({ [LABELS.policy]: DEFAULT_POLICY }, ID)).toBe(policies.defaultPolicy);
  });
});

describe('a label that cannot be honoured gives the refusing policy, never the default', () => {
  const refusals: Array<[string, Record<string, string>, RegExp]> = [
    ['a policy the file does not have', { [LABELS.policy]: 'c1' }, /^on-his-name\.policy=c1 names no policy of the policy file \(ci, web\)$/],
    ['a typo of a policy', { [LABELS.policy]: 'CI' }, /names no policy/],
    ['"refused" by name', { [LABELS.policy]: REFUSED_POLICY }, /names no policy/],
    ['another container\'s own policy by name', { [LABELS.policy]: 'c-0123456789ab' }, /names no policy/],
    ['an empty policy label', { [LABELS.policy]: '' }, /names no policy/],
    ['both labels at once', { [LABELS.policy]: 'ci', [LABELS.allow]: 'a.test.' }, /both on-his-name\.policy and on-his-name\.allow are set: give one/],
    // A misspelt key would leave the container the default policy, as if it had no label.
    ['a misspelt label key', { 'on-his-name.polic': 'ci' }, /^unknown label on-his-name\.polic: on-his-name reads on-his-name\.policy, on-his-name\.allow, on-his-name\.ports$/],
    ['a misspelt key beside a good one', { [LABELS.allow]: 'a.test.', 'on-his-name.port': '443' }, /^unknown label on-his-name\.port:/],
    ['ports without patterns', { [LABELS.ports]: '443' }, /^on-his-name\.ports without on-his-name\.allow: the ports go with the container's own patterns$/],
    ['"*" without --allow-all', { [LABELS.allow]: '*' }, /^on-his-name\.allow: bad pattern "\*": it allows every name.*--allow-all/],
    ['"**" without --allow-all', { [LABELS.allow]: '**' }, /--allow-all/],
    ['"*.*" without --allow-all', { [LABELS.allow]: '*.*' }, /no label in it is fixed/],
    ['"*" hidden among good patterns', { [LABELS.allow]: 'a.test. * b.test.' }, /bad pattern "\*"/],
    ['a pattern with a bad character', { [LABELS.allow]: 'api.example.com. evil?.com.' }, /bad pattern "evil\?\.com\.": '\?' is not pattern syntax/],
    ['a URL for a pattern', { [LABELS.allow]: 'https://api.example.com/' }, /cannot be in a DNS name/],
    ['"**" inside a label', { [LABELS.allow]: 'a**.example.com.' }, /'\*\*' may only be the whole leftmost label/],
    ['an empty allow label', { [LABELS.allow]: '' }, /no pattern given/],
    ['an allow label of separators only', { [LABELS.allow]: ' , ' }, /no pattern given/],
    ['a port out of range', { [LABELS.allow]: 'a.test.', [LABELS.ports]: '65536' }, /^on-his-name\.allow: on-his-name\.ports "65536" is not a port/],
    ['a port range', { [LABELS.allow]: 'a.test.', [LABELS.ports]: '1-65535' }, /on-his-name\.ports "1-65535" is not a port/],
    ['a port with rule syntax', { [LABELS.allow]: 'a.test.', [LABELS.ports]: '443 -j ACCEPT' }, /is not a port/],
  ];

  it.each(refusals)('%s', (_what, labels, reason) => {
    const policy = set().forLabels(labels, ID)!;
    expect(policy).toMatchObject({ name: REFUSED_POLICY, origin: 'refused', ports: [], clients: [] });
    expect(policy.refusal).toMatch(reason);
    expect(policy.patterns.patterns).toEqual([]);
    for (const name of ['allowed.test', 'example.com', 'github.com', 'api.example.com', 'anything.at.all']) expect(allows(policy, name)).toBe(false);
  });

  it('leaves a label no way to smuggle kernel rules: its words are DNS names at most, and its policy is named by the container id', () => {
    const own = set().forLabels({ [LABELS.allow]: 'a.test.\n-A FORWARD -j ACCEPT\nCOMMIT' }, ID)!;
    expect(own.name).toBe('c-0123456789ab');
    expect(own.patterns.patterns.map((p) => p.normalised)).toEqual(['a.test.', '-a.', 'forward.', '-j.', 'accept.', 'commit.']);
    expect(set().forLabels({ [LABELS.allow]: 'a.test. "x" $(id)' }, ID)!.name).toBe(REFUSED_POLICY);
  });

  it('takes "*" and "**" in a label with --allow-all, as on the command line', () => {
    expect(set({ allowAll: true }).forLabels({ [LABELS.allow]: '*' }, ID)!.patterns.match('anything.test.')?.kind).toBe('all');
    expect(set({ allowAll: true }).forLabels({ [LABELS.allow]: '**' }, ID)!.origin).toBe('label');
  });

  it('says which policies there are when the file has none', () => {
    expect(PolicySet.compile(['a.test.'], CLI_PORTS, undefined).forLabels({ [LABELS.policy]: 'ci' }, ID)!.refusal).toBe(
      'on-his-name.policy=ci names no policy of the policy file (none)',
    );
  });

  it("refuses, with --backend ipset, more ports of one protocol than the set's one multiport rule takes: the kernel would refuse the policy's chain, and with it every later route", () => {
    const ports = Array.from({ length: 16 }, (_, i) => 8000 + i).join(',');
    const refused = set({ maxSetPorts: 15 }).forLabels({ [LABELS.allow]: 'a.test.', [LABELS.ports]: ports }, ID)!;
    expect(refused.name).toBe(REFUSED_POLICY);
    expect(refused.refusal).toBe('on-his-name.ports: --backend ipset opens at most 15 tcp ports (got 16): give fewer, or use another backend');
    const fifteen = Array.from({ length: 15 }, (_, i) => 8000 + i).join(',') + ',udp/53';
    expect(set({ maxSetPorts: 15 }).forLabels({ [LABELS.allow]: 'a.test.', [LABELS.ports]: fifteen }, ID)!.origin).toBe('label');
    expect(set().forLabels({ [LABELS.allow]: 'a.test.', [LABELS.ports]: ports }, ID)!.ports).toHaveLength(16); // other backends: a rule per port
  });
});
