/**
 * The stand-in listening producer of bench/first-connection.ts (test/lab/instant-dnstap-dns.ts)
 * end to end, so that its benchmark row means what it says: in the firewall lab it answers
 * the containers' DNS on the gateway, reports each answer on its listening socket, and the
 * real CLI with --connect opens exactly what it answered, naming the container that asked.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE, CONTAINERS, DEFAULT_RECORDS, GATEWAY, ZONE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { startInstantDnstapDns, type InstantDnstapDns } from '../lab/instant-dnstap-dns.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

describe.skipIf(!canUseNamespaces())(`the instant dnstap DNS stand-in with --connect${skipNote()}`, () => {
  let dir: string;
  let lab: FirewallLab;
  let dns: InstantDnstapDns;
  let daemon: CliProcess;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-instant-dns-test-'));
    await chmod(dir, 0o755);
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'unused.sock') });
    const socket = join(dir, 'dnstap.sock');
    dns = await startInstantDnstapDns({ namespace: lab.host, listen: GATEWAY, zone: ZONE, records: DEFAULT_RECORDS, dnstapSocket: socket });
    daemon = startCli(lab.host.name, ['--interface', BRIDGE, '--connect', `unix://${socket}`, 'allowed.test.', 'alias.test.', 'multi.test.']);
    await daemon.waitFor((l) => l.msg === 'connected to the dnstap producer');
  }, 60_000);

  printOnFailure(async () => firewallReport(await lab.rules(), `${daemon?.output()}\n${dns?.output()}`));

  afterAll(async () => {
    await daemon?.stop();
    await dns?.stop();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a container over UDP, and --connect opens the address it gave, naming that container', async () => {
    expect(await lab.connect('198.51.100.10', 80, { timeoutMs: 1500 })).toBe(false);
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    const allow = await daemon.waitFor((l) => l.msg === 'allow' && l.name === 'allowed.test.');
    expect(allow).toMatchObject({ client: CONTAINERS[0], added: ['198.51.100.10'] });
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
  });

  it('follows CNAME chains, answers over TCP, and a denied name opens nothing', async () => {
    expect(await lab.resolve('alias.test')).toEqual(['198.51.100.13']);
    await daemon.waitFor((l) => l.msg === 'allow' && l.name === 'alias.test.' && String(l.added) === '198.51.100.13');
    const overTcp = await lab.containers[1]!.exec('dig', ['+short', '+tcp', '+time=5', '+tries=1', `@${GATEWAY}`, 'multi.test']);
    expect(overTcp.split('\n').sort()).toEqual(['198.51.100.11', '198.51.100.12']);
    const multi = await daemon.waitFor((l) => l.msg === 'allow' && l.name === 'multi.test.');
    expect(multi).toMatchObject({ client: CONTAINERS[1] });
    expect(await lab.resolve('denied.test')).toEqual(['203.0.113.10']);
    await daemon.waitFor((l) => l.msg === 'deny' && l.name === 'denied.test.');
    expect(await lab.connect('203.0.113.10', 80, { timeoutMs: 1500 })).toBe(false);
  });
});
