/**
 * The daemon in connect mode, end to end in process: it dials a listening producer (the
 * fake CoreDNS `dnstap listen` of test/support/listening-producer.ts) and the answers it
 * reads open rules in the fake kernel, across a producer restart.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { clientResponse } from '../../support/dnstap.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIptables } from '../../support/iptables.js';
import { listeningProducer, type ListeningProducer } from '../../support/listening-producer.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer, until } from '../../support/socket.js';

let dir: string;
let daemon: Daemon | undefined;
let producer: ListeningProducer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-connect-'));
});
afterEach(async () => {
  await daemon?.close();
  await producer?.crash();
  daemon = producer = undefined;
  await rm(dir, { recursive: true, force: true });
});

const A = (name: string, data: string) => ({ type: 'A' as const, name, data, ttl: 60 });
const opened = (chain: string[]) => chain.map((l) => /-d (\S+)\/32 .*--dport 443/.exec(l)?.[1]).filter(Boolean).sort();

describe('the daemon with --connect', () => {
  it('opens what a listening producer reports, keeps doing so after the producer restarts, and listens on nothing', async () => {
    const path = join(dir, 'coredns.sock');
    const kernel = fakeIptables();
    const { log, lines } = recordingLogger();
    // The producer is not up yet: the daemon starts anyway, DROP in place, and waits for it.
    daemon = await startDaemon(parseConfig(['--interface', 'br0', '--connect', `unix://${path}`, 'allowed.test.'], {}), { runner: kernel.runner, log });
    expect(kernel.chain.join('\n')).toContain('-j DROP');
    expect(daemon.listener).toBeUndefined();

    producer = await listeningProducer({ transport: 'unix', path });
    await until(() => producer!.streaming() === 1, 5_000);
    producer.send(clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10')]));
    producer.send(clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '203.0.113.10')]));
    await until(() => daemon!.stats.decisions.deny === 1);
    await daemon.firewall.settled();
    expect(opened(kernel.chain)).toEqual(['198.51.100.10']);

    await producer.stop();
    await producer.start();
    await until(() => producer!.streaming() === 1, 5_000);
    producer.send(clientResponse('192.0.2.11', 'allowed.test', [A('allowed.test', '198.51.100.20')]));
    await until(() => daemon!.stats.decisions.allow === 2);
    await daemon.firewall.settled();
    expect(opened(kernel.chain)).toEqual(['198.51.100.10', '198.51.100.20']);
    expect(lines.filter((l) => l.component === 'dnstap' && l.level >= 40).map((l) => l.msg)).toEqual([
      'dnstap producer not reachable yet; retrying until it is',
      expect.stringMatching(/^dnstap producer went away/),
    ]);
    expect(lines.find((l) => l.msg === 'allow')).toMatchObject({ name: 'allowed.test.', client: '192.0.2.10', added: ['198.51.100.10'] });
  });

  it('reads pushing and listening producers side by side when given --listen and --connect', async () => {
    const listenPath = join(dir, 'push.sock');
    const connectPath = join(dir, 'listening.sock');
    producer = await listeningProducer({ transport: 'unix', path: connectPath });
    const kernel = fakeIptables();
    const config = parseConfig(['--interface', 'br0', '--listen', listenPath, '--connect', connectPath, 'allowed.test.'], {});
    daemon = await startDaemon(config, { runner: kernel.runner, log: recordingLogger().log });
    await until(() => producer!.streaming() === 1);
    producer.send(clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.30')]));
    const pusher = await connectProducer(listenPath);
    await pusher.write(bidirectionalStream([clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.31')])]));
    await pusher.closed;
    await until(() => daemon!.stats.decisions.allow === 2);
    await daemon.firewall.settled();
    expect(opened(kernel.chain)).toEqual(['198.51.100.30', '198.51.100.31']);
    expect(daemon.dialers).toHaveLength(1);
    expect(daemon.dialers[0]!.stats.dataFrames + daemon.listener!.stats.dataFrames).toBe(2);
  });
});
