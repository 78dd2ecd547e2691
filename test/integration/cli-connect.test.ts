/**
 * The real CLI with --connect, in a lab shaped like a Docker host: it dials a listening
 * producer (the fake CoreDNS `dnstap listen` of test/support/listening-producer.ts, on a
 * Unix socket the lab's host namespace shares through the filesystem), and what the
 * producer reports opens real iptables rules, before and after the producer restarts.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egress } from '../lab/egress.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { clientResponse } from '../support/dnstap.js';
import { listeningProducer, type ListeningProducer } from '../support/listening-producer.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { until } from '../support/socket.js';

const A = (name: string, data: string) => ({ type: 'A' as const, name, data, ttl: 60 });

describe.skipIf(!canUseNamespaces())(`on-his-name --connect in namespaces${skipNote()}`, () => {
  let dir: string;
  let lab: FirewallLab;
  let producer: ListeningProducer;
  let daemon: CliProcess;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-cli-connect-'));
    await chmod(dir, 0o755);
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'unused.sock') });
    const path = join(dir, 'coredns-dnstap.sock');
    producer = await listeningProducer({ transport: 'unix', path });
    // Debug lines too: each retry while the producer is away says so at debug level.
    daemon = startCli(lab.host.name, ['--log-level', 'debug', '--interface', BRIDGE, '--connect', `unix://${path}`, 'allowed.test.']);
    await daemon.waitFor((l) => l.msg === 'connected to the dnstap producer');
  }, 60_000);

  printOnFailure(async () => firewallReport(await lab.rules(), daemon?.output()));

  afterAll(async () => {
    await daemon?.stop();
    await producer?.crash();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('opens what the listening producer reports, and nothing else', async () => {
    expect(await egress(lab, '198.51.100.10', 80)).toBe('dropped');
    producer.send(clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10')]));
    producer.send(clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '198.51.100.11')]));
    await daemon.waitFor((l) => l.msg === 'deny');
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
    expect(await egress(lab, '198.51.100.11', 80)).toBe('dropped');
    expect((await lab.rules()).filter((l) => l.includes('198.51.100.11'))).toEqual([]);
  });

  it('reconnects to a producer that crashed and restarted, saying so once each way', async () => {
    await producer.crash();
    await daemon.waitFor((l) => l.msg.startsWith('dnstap producer went away'));
    const retries = () => daemon.lines.filter((l) => l.msg === 'dnstap producer still away');
    await daemon.waitFor(() => retries().length >= 3); // away for three retries, not for a guessed while
    expect(retries().every((l) => l.level === 20)).toBe(true); // retries are debug lines
    await producer.start();
    await daemon.waitFor((l) => l.msg === 'dnstap producer is back');
    await until(() => producer.streaming() === 1);
    producer.send(clientResponse('192.0.2.11', 'allowed.test', [A('allowed.test', '198.51.100.12')]));
    await daemon.waitFor((l) => l.msg === 'allow' && (l.added as string[]).includes('198.51.100.12'));
    expect(await lab.connect('198.51.100.12', 443, { from: 1 })).toBe(true);
    expect(daemon.lines.filter((l) => l.msg.startsWith('dnstap producer went away'))).toHaveLength(1);
    expect(daemon.lines.filter((l) => l.msg === 'dnstap producer is back')).toHaveLength(1);
  });

  it('stops on SIGTERM, closing its connection and leaving the rules in place', async () => {
    expect(await daemon.stop()).toBe(0);
    await until(() => producer.streaming() === 0);
    expect((await lab.rules()).filter((l) => l.includes('-j ACCEPT') && l.includes('198.51.100.1'))).toHaveLength(4);
  });
});
