/**
 * Clients: which policy the address that asked has. A container's labels first, then the
 * file's ranges (the narrowest first), then the default; what Docker says now wins over
 * what it said before, and a reload reads every container's labels again.
 */
import { describe, expect, it } from 'vitest';
import type { PortSpec } from '../../../src/firewall/rules.js';
import { Clients, MAX_CACHED_CLIENTS, describeChange, type Container } from '../../../src/policy/clients.js';
import { LABELS, PolicySet } from '../../../src/policy/policies.js';
import { parsePolicyFile } from '../../../src/policy/policy-file.js';

const PORTS: PortSpec[] = [{ protocol: 'tcp', port: 443 }];
const policies = (yaml: string) => PolicySet.compile(['allowed.test.'], PORTS, parsePolicyFile(yaml, 'policies.yaml'));
const FILE = [
  'policies:',
  '  ci: {allow: [github.com.]}',
  '  web: {allow: [api.stripe.com.]}',
  '  lab: {allow: [lab.test.], clients: ["172.18.0.0/24", "fd00:18::/64"]}',
  '  bench: {allow: [bench.test.], clients: ["172.18.1.16/28"]}',
].join('\n');
const id = (n: number) => String(n).repeat(64).slice(0, 64);
const container = (n: number, addresses: string[], labels: Record<string, string> = {}): Container => ({ id: id(n), name: `c${n}`, addresses, labels });
const policyOf = (clients: Clients, address: string | undefined) => clients.forClient(address).policy.name;

describe('Clients.forClient', () => {
  it('gives a labelled container its policy, and names the container', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.0.2', 'fd00:18::2'], { [LABELS.policy]: 'ci' }));
    expect(clients.forClient('172.18.0.2')).toEqual({ policy: clients.policySet.named.get('ci'), container: { id: id(1), name: 'c1' } });
    expect(policyOf(clients, 'fd00:18::2')).toBe('ci');
  });

  it("gives a container without labels its address's range, still naming the container", () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.0.2']));
    expect(clients.forClient('172.18.0.2')).toMatchObject({ policy: { name: 'lab' }, container: { name: 'c1' } });
  });

  it('lets a label win over the range its address is in', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.1.17'], { [LABELS.policy]: 'web' }));
    expect(policyOf(clients, '172.18.1.17')).toBe('web');
  });

  it('picks the narrowest range that holds the address, whatever the order of the policies', () => {
    // The file refuses ranges of two policies that overlap; built by hand, the order still holds.
    const nested = PolicySet.compile(['allowed.test.'], PORTS, {
      allow: [],
      audit: false,
      policies: [
        { name: 'wide', allow: [], clients: ['172.18.0.0/16'], audit: false },
        { name: 'narrow', allow: [], clients: ['172.18.0.16/28'], audit: false },
        { name: 'one', allow: [], clients: ['172.18.0.17'], audit: false },
      ],
    });
    const clients = new Clients(nested);
    expect(policyOf(clients, '172.18.0.17')).toBe('one');
    expect(policyOf(clients, '172.18.0.18')).toBe('narrow');
    expect(policyOf(clients, '172.18.9.9')).toBe('wide');
  });

  it("gives an address in a file's range that range's policy", () => {
    const clients = new Clients(policies(FILE));
    expect(policyOf(clients, '172.18.1.17')).toBe('bench');
    expect(policyOf(clients, '172.18.0.2')).toBe('lab');
    expect(policyOf(clients, 'fd00:18::99')).toBe('lab');
  });

  it('gives the default policy to anyone else, and to an answer without a client address', () => {
    const clients = new Clients(policies(FILE));
    expect(policyOf(clients, '172.19.0.2')).toBe('default');
    expect(policyOf(clients, 'fd00:19::2')).toBe('default');
    expect(policyOf(clients, undefined)).toBe('default');
    expect(clients.forClient('172.19.0.2').container).toBeUndefined();
  });

  it('reads an IPv4-mapped IPv6 client (a dual-stack socket) as the IPv4 address, for containers and ranges', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.0.2'], { [LABELS.policy]: 'ci' }));
    expect(policyOf(clients, '::ffff:172.18.0.2')).toBe('ci');
    expect(policyOf(clients, '::ffff:172.18.1.17')).toBe('bench');
    expect(policyOf(clients, '::ffff:172.19.0.2')).toBe('default');
  });

  it('keeps IPv6 ranges for IPv6 clients and IPv4 ranges for IPv4 clients, even ::/0 and 0.0.0.0/0', () => {
    const clients = new Clients(policies('policies:\n  six: {clients: ["::/0"]}\n'));
    expect(policyOf(clients, 'fd00::1')).toBe('six');
    expect(policyOf(clients, '172.18.0.2')).toBe('default'); // node's BlockList alone would say ::/0 holds it
    expect(policyOf(clients, '::ffff:172.18.0.2')).toBe('default');
    const four = new Clients(policies('policies:\n  four: {clients: ["0.0.0.0/0"]}\n'));
    expect(policyOf(four, '198.51.100.1')).toBe('four');
    expect(policyOf(four, 'fd00::1')).toBe('default');
  });

  it("gives a container with a label that cannot be honoured the refusing policy, even inside another policy's range", () => {
    const clients = new Clients(policies(FILE));
    const given = clients.setContainer(container(1, ['172.18.1.17'], { [LABELS.allow]: '*' }));
    expect(given?.name).toBe('refused');
    expect(policyOf(clients, '172.18.1.17')).toBe('refused');
  });
});

describe('containers coming and going', () => {
  it('gives an address Docker hands to a new container the new one\'s policy at once, never the old one\'s', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.0.2'], { [LABELS.policy]: 'ci' }));
    expect(policyOf(clients, '172.18.0.2')).toBe('ci'); // remembered…
    clients.setContainer(container(2, ['172.18.0.2'], { [LABELS.policy]: 'web' }));
    expect(policyOf(clients, '172.18.0.2')).toBe('web'); // …and forgotten when Docker says so
    clients.removeContainer(id(1)); // the old one's die event, arriving late
    expect(clients.forClient('172.18.0.2')).toMatchObject({ policy: { name: 'web' }, container: { name: 'c2' } });
  });

  it('drops a dead container\'s policy from its address: it falls back to the range, then the default', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.18.0.2', '172.19.0.2'], { [LABELS.policy]: 'ci' }));
    expect(policyOf(clients, '172.19.0.2')).toBe('ci');
    clients.removeContainer(id(1));
    expect(policyOf(clients, '172.18.0.2')).toBe('lab');
    expect(policyOf(clients, '172.19.0.2')).toBe('default');
    expect(clients.forClient('172.18.0.2').container).toBeUndefined();
  });

  it('follows a container whose address changed (disconnect and connect): the old address is no longer its', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.policy]: 'ci' }));
    clients.setContainer(container(1, ['172.19.0.3'], { [LABELS.policy]: 'ci' }));
    expect(policyOf(clients, '172.19.0.2')).toBe('default');
    expect(policyOf(clients, '172.19.0.3')).toBe('ci');
  });

  it('replaces what it knew with what Docker lists after a reconnect, forgetting the containers gone meanwhile', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.policy]: 'ci' }));
    clients.setContainer(container(2, ['172.19.0.3'], { [LABELS.policy]: 'web' }));
    clients.replaceContainers([container(2, ['172.19.0.3'], { [LABELS.policy]: 'web' }), container(3, ['172.19.0.2'])]);
    expect(policyOf(clients, '172.19.0.2')).toBe('default'); // container 3 has no label; container 1's policy is gone
    expect(policyOf(clients, '172.19.0.3')).toBe('web');
    expect(clients.list().map((c) => c.name)).toEqual(['c2', 'c3']);
  });

  it('lists each container with its policy, and why a refused one opens nothing', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.policy]: 'ci' }));
    clients.setContainer(container(2, ['172.19.0.3'], { [LABELS.policy]: 'nope' }));
    clients.setContainer(container(3, ['172.19.0.4']));
    expect(clients.list()).toEqual([
      { id: id(1), name: 'c1', addresses: ['172.19.0.2'], policy: 'ci' },
      { id: id(2), name: 'c2', addresses: ['172.19.0.3'], policy: 'refused', refusal: 'on-his-name.policy=nope names no policy of the policy file (ci, web, lab, bench)' },
      { id: id(3), name: 'c3', addresses: ['172.19.0.4'], policy: undefined },
    ]);
  });
});

describe('Clients.routes and policiesInUse', () => {
  it("routes each labelled container's addresses (IPv4-mapped ones as IPv4), then the file's ranges; never a container without labels", () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['::ffff:172.19.0.2', 'fd00:19::2'], { [LABELS.policy]: 'ci' }));
    clients.setContainer(container(2, ['172.19.0.3']));
    clients.setContainer(container(3, ['172.19.0.4'], { [LABELS.policy]: 'default' }));
    expect(clients.routes().map((r) => [r.client, r.policy.name])).toEqual([
      ['172.19.0.2', 'ci'],
      ['fd00:19::2', 'ci'],
      ['172.19.0.4', 'default'], // back to DOCKER-USER's rules even inside a range
      ['172.18.0.0/24', 'lab'],
      ['fd00:18::/64', 'lab'],
      ['172.18.1.16/28', 'bench'],
    ]);
  });

  it('routes a refused container to the refusing policy', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.allow]: 'bad?' }));
    const [first] = clients.routes();
    expect(first).toMatchObject({ client: '172.19.0.2', policy: { name: 'refused', ports: [] } });
    expect(first!.policy.patterns.patterns).toEqual([]);
  });

  it("has the file's policies in use whether or not a client has them, and each container's own and the refusing one once", () => {
    const clients = new Clients(policies(FILE));
    expect(clients.policiesInUse().map((p) => p.name)).toEqual(['default', 'ci', 'web', 'lab', 'bench']);
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.allow]: 'a.test.' }));
    clients.setContainer(container(2, ['172.19.0.3'], { [LABELS.allow]: 'b.test.' }));
    clients.setContainer(container(3, ['172.19.0.4'], { [LABELS.policy]: 'nope' }));
    clients.setContainer(container(4, ['172.19.0.5'], { [LABELS.allow]: '*' }));
    expect(clients.policiesInUse().map((p) => p.name)).toEqual(['default', 'ci', 'web', 'lab', 'bench', 'c-111111111111', 'c-222222222222', 'refused']);
    clients.removeContainer(id(1));
    expect(clients.policiesInUse().map((p) => p.name)).not.toContain('c-111111111111');
  });
});

describe('Clients.usePolicies', () => {
  it('reads every container\'s labels again: a policy gone from the file refuses its containers, a new one takes them', () => {
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.policy]: 'ci' }));
    clients.setContainer(container(2, ['172.19.0.3'], { [LABELS.policy]: 'deploy' }));
    expect(policyOf(clients, '172.19.0.2')).toBe('ci'); // remembered before the reload
    expect(policyOf(clients, '172.19.0.3')).toBe('refused');

    clients.usePolicies(policies('policies:\n  deploy: {allow: [deploy.test.]}\n'));
    expect(policyOf(clients, '172.19.0.2')).toBe('refused');
    expect(clients.forClient('172.19.0.3').policy).toBe(clients.policySet.named.get('deploy'));
    expect(clients.policiesInUse().map((p) => p.name)).toEqual(['default', 'deploy', 'refused']);
  });

  it("moves the ranges with the file: an address leaves a range's policy for the default", () => {
    const clients = new Clients(policies(FILE));
    expect(policyOf(clients, '172.18.1.17')).toBe('bench');
    clients.usePolicies(policies('policies:\n  bench: {clients: ["172.18.2.0/28"]}\n'));
    expect(policyOf(clients, '172.18.1.17')).toBe('default');
    expect(policyOf(clients, '172.18.2.2')).toBe('bench');
  });

  it('gives a container its new default patterns too: a container naming "default" follows the file', () => {
    const clients = new Clients(PolicySet.compile(['allowed.test.'], PORTS, parsePolicyFile('allow: [one.test.]', 'p.yaml')));
    clients.setContainer(container(1, ['172.19.0.2'], { [LABELS.policy]: 'default' }));
    clients.usePolicies(PolicySet.compile(['allowed.test.'], PORTS, parsePolicyFile('allow: [two.test.]', 'p.yaml')));
    expect(clients.forClient('172.19.0.2').policy.patterns.match('two.test.')).toBeDefined();
    expect(clients.forClient('172.19.0.2').policy.patterns.match('one.test.')).toBeUndefined();
  });
});

describe('a container forging source addresses', () => {
  it('costs bounded memory: the addresses it asks from are remembered up to MAX_CACHED_CLIENTS, and answered right after', () => {
    // A container may send from any address of its subnet (2^64 in an IPv6 /64) to the DNS
    // server, and each answer's client address is looked up here.
    const forged = 50_000;
    expect(MAX_CACHED_CLIENTS).toBeLessThan(forged);
    const clients = new Clients(policies(FILE));
    clients.setContainer(container(1, ['fd00:18::2'], { [LABELS.policy]: 'ci' }));
    let peak = 0;
    for (let i = 0x10000; i < 0x10000 + forged; i++) {
      expect(policyOf(clients, `fd00:18::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`)).toBe('lab');
      peak = Math.max(peak, clients.cachedCount);
    }
    expect(peak).toBeLessThanOrEqual(MAX_CACHED_CLIENTS);
    expect(policyOf(clients, 'fd00:18::2')).toBe('ci');
    expect(policyOf(clients, 'fd00:19::2')).toBe('default');
  });
});

describe('what changed, for the log', () => {
  const changed = (changes: ReturnType<Clients['replaceContainers']>) => changes.map((c) => `${c.container.name} ${c.policy?.name ?? '-'}`);
  const CI = container(1, ['172.18.0.2'], { [LABELS.policy]: 'ci' });
  const WEB = container(2, ['172.18.0.3'], { [LABELS.allow]: 'allowed.test.' });
  const PLAIN = container(3, ['172.18.1.4']);

  it('says which containers are new, or have a new policy or address, and nothing for the same containers again', () => {
    const clients = new Clients(policies(FILE));
    expect(changed(clients.replaceContainers([CI, WEB, PLAIN]))).toEqual(['c1 ci', 'c2 c-222222222222', 'c3 -']);
    expect(changed(clients.replaceContainers([CI, WEB, PLAIN]))).toEqual([]);
    expect(changed(clients.replaceContainers([CI, { ...WEB, addresses: ['172.18.0.9'] }]))).toEqual(['c2 c-222222222222']);
  });

  it('says which containers a reload refuses, and which it gives their policy back', () => {
    const clients = new Clients(policies(FILE));
    clients.replaceContainers([CI, WEB]);
    const gone = clients.usePolicies(policies('policies:\n  build: {allow: [github.com.]}\n'));
    expect(changed(gone)).toEqual(['c1 refused']);
    expect(gone[0]!.policy!.refusal).toBe('on-his-name.policy=ci names no policy of the policy file (build)');
    expect(changed(clients.usePolicies(policies(FILE)))).toEqual(['c1 ci']);
  });

  it('describes a change as one line: the policy, why a container opens nothing, or (debug) no label', () => {
    const clients = new Clients(policies(FILE));
    const [ci, typo, plain] = clients.replaceContainers([CI, container(4, ['172.18.0.5'], { [LABELS.policy]: 'cii' }), PLAIN]);
    expect(describeChange(ci!)).toEqual({ level: 'info', fields: { container: 'c1', id: '111111111111', addresses: ['172.18.0.2'], policy: 'ci' }, msg: 'container c1 has policy ci' });
    expect(describeChange(typo!)).toMatchObject({ level: 'warn', fields: { policy: 'refused' }, msg: 'container c4 opens nothing: on-his-name.policy=cii names no policy of the policy file (ci, web, lab, bench)' });
    expect(describeChange(plain!)).toMatchObject({ level: 'debug', fields: { policy: null } });
  });
});

describe('Clients.decisions', () => {
  it('reads what the last snapshot made effective: a change waits for its commit, and a snapshot does not see later changes', () => {
    const clients = new Clients(policies(FILE));
    expect(clients.decisions.forClient('172.18.0.2').policy.name).toBe('lab'); // no snapshot yet: the state as it is
    const first = clients.snapshot();
    first();
    clients.setContainer(container(1, ['172.18.0.2'], { [LABELS.policy]: 'ci' }));
    const second = clients.snapshot();
    clients.setContainer(container(2, ['172.18.0.3'], { [LABELS.policy]: 'web' }));
    expect(clients.forClient('172.18.0.2').policy.name).toBe('ci');
    expect(clients.decisions.forClient('172.18.0.2').policy.name).toBe('lab');
    second();
    expect(clients.decisions.forClient('172.18.0.2')).toMatchObject({ policy: { name: 'ci' }, container: { name: 'c1' } });
    expect(clients.decisions.forClient('172.18.0.3').policy.name).toBe('lab');
  });
});
