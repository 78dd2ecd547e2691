/**
 * Inline DNS mode with the real CLI in namespaces: containers ask on-his-name for DNS, it
 * forwards to a real unbound (no dnstap) and answers only once the answer's rules are in
 * the kernel. So a connection made the instant the answer arrives completes on its first
 * SYN: the container's kernel counts no SYN retransmit, name after fresh name.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egress } from '../lab/egress.js';
import { BRIDGE, DEFAULT_RECORDS, GATEWAY, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { synRetransmits } from '../lab/syn-retransmits.js';
import { startUnbound, type Unbound } from '../lab/unbound.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const FRESH = 20;
const fresh = Array.from({ length: FRESH }, (_, i) => ({ name: `fresh${i}`, type: 'A' as const, value: `198.51.100.${100 + i}` }));
const UPSTREAM = { host: '127.0.0.1', port: 5300 };

describe.skipIf(!canUseNamespaces())(`inline DNS mode with the real CLI and unbound in namespaces${skipNote()}`, () => {
  let dir: string;
  let lab: FirewallLab;
  let upstream: Unbound;
  let daemon: CliProcess;
  const inContainer = (command: string) => lab.containers[0]!.exec('sh', ['-c', command]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-inline-'));
    await chmod(dir, 0o755);
    const records = [...DEFAULT_RECORDS, ...fresh];
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock'), records, internetAddresses: fresh.map((r) => r.value) });
    upstream = await startUnbound({ namespace: lab.host, listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records });
    daemon = startCli(lab.host.name, [
      '--interface', BRIDGE,
      '--listen', join(dir, 'dnstap.sock'),
      '--dns-listen', `${GATEWAY}:53`,
      '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`,
      'allowed.test.', 'fresh*.test.', 'multi.test.',
    ]);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
  }, 60_000);

  printOnFailure(async () => firewallReport(await lab.rules(), daemon?.output()));

  afterAll(async () => {
    await daemon?.stop();
    await upstream?.stop();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('opens each fresh name before its answer arrives: every first SYN gets through', async () => {
    const before = synRetransmits(await inContainer('cat /proc/net/netstat'));
    const script = fresh
      .map((r) => `a=$(dig +short +time=5 +tries=1 @${GATEWAY} ${r.name}.test); curl -s -o /dev/null --max-time 5 -w '${r.name} %{http_code} %{time_connect}\\n' "http://$a/"`)
      .join('; ');
    const results = (await inContainer(script)).trim().split('\n');
    const after = synRetransmits(await inContainer('cat /proc/net/netstat'));
    expect(results.map((line) => line.split(' ').slice(0, 2).join(' '))).toEqual(fresh.map((r) => `${r.name} 200`));
    expect(after - before).toBe(0);
    expect(daemon.lines.filter((l) => l.msg === 'allow')).toHaveLength(FRESH);
    expect(daemon.lines.some((l) => String(l.msg).startsWith('released a DNS answer before'))).toBe(false);
  });

  it('answers a denied name as the upstream did, and the firewall keeps it closed', async () => {
    expect(await lab.resolve('denied.test')).toEqual(['203.0.113.10']);
    expect(await egress(lab, '203.0.113.10', 80)).toBe('dropped');
    expect(daemon.lines.find((l) => l.msg === 'deny' && l.name === 'denied.test.')).toMatchObject({ client: lab.containerAddresses[0] });
  });

  it('serves DNS over TCP too, and opens every address of a multi-address answer', async () => {
    const out = await inContainer(`dig +short +tcp +time=5 +tries=1 @${GATEWAY} multi.test`);
    expect(out.trim().split('\n').sort()).toEqual(['198.51.100.11', '198.51.100.12']);
    expect(await lab.connect('198.51.100.11', 443)).toBe(true);
    expect(await lab.connect('198.51.100.12', 80)).toBe(true);
  });

  it('answers SERVFAIL for a name the upstream cannot answer in time, and keeps serving', async () => {
    await upstream.stop();
    const servfail = await inContainer(`dig +time=10 +tries=1 @${GATEWAY} allowed.test | grep -o 'status: [A-Z]*' || true`);
    expect(servfail.trim()).toBe('status: SERVFAIL');
    upstream = await startUnbound({ namespace: lab.host, listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: [...DEFAULT_RECORDS, ...fresh] });
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
  });
});
