import { afterEach, describe, expect, it } from 'vitest';
import type { AcceptedView, MatchersView, PoliciesView } from '../../../src/admin/api.js';
import { json, startAdminServer, type AdminServer } from '../../../src/admin/server.js';
import { adminUrl, runStatus } from '../../../src/admin/status.js';
import { bytes, expiresIn, renderPolicies, renderStatus } from '../../../src/admin/table.js';
import { recordingLogger } from '../../support/log.js';

const ACCEPTED: AcceptedView = {
  now: '2026-11-23T10:00:00.000Z',
  addresses: [
    { address: '198.51.100.10', family: 4, name: 'allowed.test.', policy: 'ci', client: '192.0.2.10', container: 'runner', expiresAt: '2026-11-23T10:14:55.000Z', expiresInSeconds: 895, packets: 3, bytes: 180 },
    { address: '2001:db8::10', family: 6, name: 'v6.test.', policy: 'default', client: null, container: null, expiresAt: '2026-11-23T12:05:00.000Z', expiresInSeconds: 7500, packets: 1234, bytes: 2_202_009 },
    { address: '198.51.100.13', family: 4, name: null, policy: 'default', client: null, container: null, expiresAt: null, expiresInSeconds: null, packets: null, bytes: null },
  ],
};
const MATCHERS: MatchersView = {
  matchers: [
    { policy: 'ci', pattern: 'allowed.test.', allows: 12 },
    { policy: 'default', pattern: '**.deep.test.', allows: 0 },
  ],
  decisions: { allow: 12, deny: 3, skip: 40 },
};

const POLICIES: PoliciesView = {
  file: '/etc/on-his-name/policies.yaml',
  policies: [
    { name: 'default', origin: 'default', audit: false, patterns: ['**.deep.test.'], ports: ['tcp/80', 'tcp/443'], clients: [], containers: [] },
    { name: 'ci', origin: 'file', audit: false, patterns: ['allowed.test.', '*.github.com.'], ports: ['tcp/443'], clients: ['172.18.0.16/28'], containers: [{ id: 'a1', name: 'runner', addresses: ['172.18.0.5'] }] },
    { name: 'refused', origin: 'refused', audit: false, patterns: [], ports: [], clients: [], containers: [{ id: 'b2', name: 'typo', addresses: ['172.18.0.6'], refusal: 'on-his-name.policy=cl names no policy of the policy file (ci)' }] },
  ],
  reload: { at: '2026-11-23T09:59:00.000Z', ok: false, why: 'SIGHUP', error: 'policies.yaml:4: unknown key "alow" in policy ci: expected allow, ports, clients' },
};

describe('renderPolicies', () => {
  it('says who has each policy, what it opens, why a container opens nothing, and a refused reload', () => {
    expect(renderPolicies(POLICIES)).toEqual([
      'POLICY   PORTS           CLIENTS                PATTERNS',
      'default  tcp/80 tcp/443  (every other client)   **.deep.test.',
      'ci       tcp/443         172.18.0.16/28 runner  allowed.test. *.github.com.',
      'refused  -               typo                   (none: opens nothing)',
      'Container typo opens nothing: on-his-name.policy=cl names no policy of the policy file (ci).',
      'The last reload (2026-11-23T09:59:00.000Z, SIGHUP) was refused: policies.yaml:4: unknown key "alow" in policy ci: expected allow, ports, clients',
    ]);
  });

  it('is left out of status while there is one policy, and leads it when there are more', () => {
    const one = { ...POLICIES, policies: POLICIES.policies.slice(0, 1) };
    expect(renderStatus(ACCEPTED, MATCHERS, one)).toBe(renderStatus(ACCEPTED, MATCHERS));
    expect(renderStatus(ACCEPTED, MATCHERS, POLICIES)).toBe(`${renderPolicies(POLICIES).join('\n')}\n\n${renderStatus(ACCEPTED, MATCHERS)}`);
  });
});

describe('renderStatus', () => {
  it('prints the open addresses and the patterns as aligned tables', () => {
    expect(renderStatus(ACCEPTED, MATCHERS)).toBe(
      [
        'ADDRESS        NAME           POLICY   CLIENT      CONTAINER  EXPIRES IN  PACKETS    BYTES',
        '198.51.100.10  allowed.test.  ci       192.0.2.10  runner        14m 55s        3    180 B',
        '2001:db8::10   v6.test.       default  -           -              2h 05m     1234  2.1 MiB',
        '198.51.100.13  -              default  -           -               never        -        -',
        '',
        '3 addresses open (IPv4 2, IPv6 1).',
        '',
        'POLICY   PATTERN        ALLOWS',
        'ci       allowed.test.      12',
        'default  **.deep.test.       0',
        '',
        'Decisions: 12 allow, 3 deny, 40 skip.',
        '',
      ].join('\n'),
    );
  });

  it('says when nothing is open, and why counters are missing', () => {
    const text = renderStatus({ now: ACCEPTED.now, addresses: [], countersError: 'IPv4: iptables-save not found' }, { matchers: [], decisions: { allow: 0, deny: 0, skip: 0 } });
    expect(text).toBe('No address is open.\nCounters unavailable: IPv4: iptables-save not found\n\nPOLICY  PATTERN  ALLOWS\n\nDecisions: 0 allow, 0 deny, 0 skip.\n');
  });

  it.each([
    [0, '0s'],
    [59, '59s'],
    [60, '1m 00s'],
    [3599, '59m 59s'],
    [3600, '1h 00m'],
    [86_399, '23h 59m'],
    [90_000, '1d 01h'],
  ])('says %i seconds as %s', (seconds, text) => {
    expect(expiresIn(seconds, 'x')).toBe(text);
  });

  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
  ])('says %i bytes as %s', (value, text) => {
    expect(bytes(value)).toBe(text);
  });
});

describe('runStatus', () => {
  let server: AdminServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const sink = () => {
    let text = '';
    return { write: (t: string) => (text += t), text: () => text };
  };

  it('asks the daemon for its views and prints them', async () => {
    server = await startAdminServer({
      address: { host: '127.0.0.1', port: 0, loopback: true },
      routes: { '/api/accepted': async () => json(200, ACCEPTED), '/api/matchers': async () => json(200, MATCHERS), '/api/policies': async () => json(200, POLICIES) },
      log: recordingLogger().log,
    });
    const [out, err] = [sink(), sink()];
    expect(await runStatus({ host: '127.0.0.1', port: Number(new URL(server.url).port), loopback: true }, out, err)).toBe(0);
    expect(out.text()).toBe(renderStatus(ACCEPTED, MATCHERS, POLICIES));
    expect(err.text()).toBe('');
  });

  it('still prints the rest for a daemon without /api/policies', async () => {
    server = await startAdminServer({
      address: { host: '127.0.0.1', port: 0, loopback: true },
      routes: { '/api/accepted': async () => json(200, ACCEPTED), '/api/matchers': async () => json(200, MATCHERS) },
      log: recordingLogger().log,
    });
    const [out, err] = [sink(), sink()];
    expect(await runStatus({ host: '127.0.0.1', port: Number(new URL(server.url).port), loopback: true }, out, err)).toBe(0);
    expect(out.text()).toBe(renderStatus(ACCEPTED, MATCHERS));
  });

  it('fails with one line naming the address and the fix when nothing listens', async () => {
    server = await startAdminServer({ address: { host: '127.0.0.1', port: 0, loopback: true }, routes: {}, log: recordingLogger().log });
    const port = Number(new URL(server.url).port);
    await server.close();
    server = undefined;
    const [out, err] = [sink(), sink()];
    expect(await runStatus({ host: '127.0.0.1', port, loopback: true }, out, err)).toBe(1);
    expect(out.text()).toBe('');
    expect(err.text()).toBe(
      `on-his-name: cannot read the admin API at http://127.0.0.1:${port} (ECONNREFUSED): is on-his-name running with --admin-listen 127.0.0.1:${port}?\n`,
    );
  });

  it('fails the same way when something else answers on that port', async () => {
    server = await startAdminServer({ address: { host: '127.0.0.1', port: 0, loopback: true }, routes: {}, log: recordingLogger().log });
    const [out, err] = [sink(), sink()];
    expect(await runStatus({ host: '127.0.0.1', port: Number(new URL(server.url).port), loopback: true }, out, err)).toBe(1);
    expect(err.text()).toMatch(/\(\/api\/(accepted|matchers) answered HTTP 404\)/);
    expect(err.text().split('\n')).toHaveLength(2);
  });

  it('connects to loopback for a wildcard listen address', () => {
    expect(adminUrl({ host: '0.0.0.0', port: 9090 })).toBe('http://127.0.0.1:9090');
    expect(adminUrl({ host: '::', port: 9090 })).toBe('http://[::1]:9090');
    expect(adminUrl({ host: '2001:db8::1', port: 9090 })).toBe('http://[2001:db8::1]:9090');
  });
});
