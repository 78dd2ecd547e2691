import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.js';
import { ConfigError } from '../../../src/util/errors.js';
import { MessageType } from '../../../src/dnstap/schema.js';
import { addressBytes, clientResponse, dnsResponse, dnstapFrame } from '../../support/dnstap.js';
import { answerData, answerTo, askUdp, query, startFakeUpstream } from '../../support/dns.js';
import { bidirectionalStream } from '../../support/framestream.js';
import { fakeIpset } from '../../support/ipset.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer } from '../../support/socket.js';

let dir: string;
let daemon: Daemon | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-daemon-'));
});
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await rm(dir, { recursive: true, force: true });
});

const A = (name: string, data: string) => ({ type: 'A' as const, name, data, ttl: 60 });

async function start(patterns: string[], kernel = fakeIptables()) {
  const recorder = recordingLogger();
  const config = parseConfig(['--interface', 'br0', '--listen', join(dir, 'dnstap.sock'), ...patterns], {});
  daemon = await startDaemon(config, { runner: kernel.runner, log: recorder.log });
  return { kernel, ...recorder };
}

async function send(frames: Buffer[]) {
  const producer = await connectProducer(join(dir, 'dnstap.sock'));
  await producer.write(bidirectionalStream(frames));
  await producer.closed;
  await daemon!.firewall.settled();
}

describe('the daemon, end to end in process', () => {
  it('opens every address of an allowed answer and nothing for a denied one', async () => {
    const { kernel, lines } = await start(['allowed.test.', '*.cdn.test.']);
    await send([
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10'), A('allowed.test', '198.51.100.11')]),
      clientResponse('192.0.2.10', 'denied.test', [A('denied.test', '203.0.113.10')]),
      clientResponse('192.0.2.11', 'www.cdn.test', [A('www.cdn.test', '198.51.100.12')]),
    ]);
    const accepts = kernel.chain.filter((l) => l.includes('-j ACCEPT'));
    expect(accepts.map((l) => /-d (\S+)\/32/.exec(l)?.[1]).sort()).toEqual(
      ['198.51.100.10', '198.51.100.10', '198.51.100.11', '198.51.100.11', '198.51.100.12', '198.51.100.12'],
    );
    expect(kernel.chain.join('\n')).not.toContain('203.0.113.10');
    expect(lines.find((l) => l.msg === 'allow')).toMatchObject({ name: 'allowed.test.', client: '192.0.2.10', added: ['198.51.100.10', '198.51.100.11'] });
    expect(lines.find((l) => l.msg === 'deny')).toMatchObject({ name: 'denied.test.', client: '192.0.2.10' });
    expect(daemon!.stats.decisions).toEqual({ allow: 2, deny: 1, skip: 0 });
  });

  it("carries each answer's TTL to the firewall: the rule's expiry is TTL + grace from now", async () => {
    const { kernel } = await start(['--min-ttl', '60', '--ttl-grace', '30', 'allowed.test.']);
    const before = Math.floor(Date.now() / 1000);
    await send([clientResponse('192.0.2.10', 'allowed.test', [{ type: 'A', name: 'allowed.test', data: '198.51.100.10', ttl: 3600 }])]);
    const after = Math.ceil(Date.now() / 1000);
    const expiry = Number(/exp=(\d+)/.exec(kernel.chain.find((l) => l.includes('198.51.100.10/32')) ?? '')?.[1]);
    expect(expiry).toBeGreaterThanOrEqual(before + 3630);
    expect(expiry).toBeLessThanOrEqual(after + 3631);
  });

  it('installs its DROP before the socket exists', async () => {
    const kernel = fakeIptables();
    const listed: boolean[] = [];
    const watching = { ...kernel.runner, restore: async (s: string) => { listed.push(s.includes('-j DROP')); await kernel.runner.restore(s); } };
    await start(['a.test'], { ...kernel, runner: watching });
    expect(listed).toEqual([true]);
  });

  it('skips broken frames with a warning and keeps serving the same producer', async () => {
    const { kernel, lines } = await start(['allowed.test.']);
    await send([
      Buffer.from('definitely not protobuf'),
      dnstapFrame({ queryAddress: addressBytes('192.0.2.10'), responseMessage: Buffer.from([1, 2, 3, 4, 5]) }),
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10')]),
    ]);
    expect(daemon!.stats.decodeErrors).toBe(2);
    expect(lines.filter((l) => l.msg === 'skipped a dnstap frame').map((l) => l.reason)).toEqual([
      expect.stringMatching(/not a dnstap protobuf message/),
      expect.stringMatching(/malformed DNS message/),
    ]);
    expect(kernel.chain.filter((l) => l.includes('198.51.100.10/32'))).toHaveLength(2);
  });

  it('warns once, naming the fix, when the producer sends responses without "full"', async () => {
    const { lines } = await start(['allowed.test.']);
    await send([dnstapFrame({ queryAddress: addressBytes('192.0.2.10') }), dnstapFrame({ queryAddress: addressBytes('192.0.2.10') })]);
    const warnings = lines.filter((l) => String(l.msg).includes('no response message'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('full');
  });

  it('ignores client queries, NXDOMAIN answers and answers without addresses', async () => {
    const { kernel } = await start(['allowed.test.']);
    await send([
      dnstapFrame({ type: MessageType.CLIENT_QUERY, queryAddress: addressBytes('192.0.2.10') }),
      dnstapFrame({ queryAddress: addressBytes('192.0.2.10'), responseMessage: dnsResponse('allowed.test', [A('allowed.test', '198.51.100.10')], { rcode: 3 }) }),
      clientResponse('192.0.2.10', 'allowed.test', []),
    ]);
    expect(kernel.chain.filter((l) => l.includes('-j ACCEPT'))).toEqual([]);
    expect(daemon!.stats.decisions.skip).toBe(3);
  });

  it('refuses to start with a bad pattern, before touching the firewall', async () => {
    const kernel = fakeIptables();
    await expect(start(['exa?mple.com'], kernel)).rejects.toThrow(ConfigError);
    expect(kernel.scripts).toEqual([]);
  });
});

describe('the daemon with IPv6', () => {
  const AAAA = (name: string, data: string) => ({ type: 'AAAA' as const, name, data, ttl: 60 });
  const failing = { list: async () => { throw new ConfigError('the DOCKER-USER chain does not exist: start Docker'); }, restore: async () => {} };
  const dockerWith = (EnableIPv6: boolean) => () => ({
    getNetwork: () => ({
      inspect: async () => ({ Id: 'a'.repeat(64), Name: 'on-his-name', Driver: 'bridge', EnableIPv6, IPAM: { Config: [{ Subnet: '172.18.0.0/16' }, { Subnet: 'fd00:18::/64' }] } }),
    }),
  });

  it('opens AAAA answers in ip6tables and A answers in iptables, and nothing of one family in the other', async () => {
    const v4 = fakeIptables();
    const v6 = fakeIptables();
    const config = parseConfig(['--interface', 'br0', '--listen', join(dir, 'dnstap.sock'), 'allowed.test.', 'v4only.test.'], {});
    daemon = await startDaemon(config, { runner: v4.runner, runner6: v6.runner, log: recordingLogger().log });
    expect(v6.chain.join('\n')).toContain('-j DROP');
    await send([
      clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10'), AAAA('allowed.test', '2001:db8::10')]),
      clientResponse('192.0.2.10', 'v4only.test', [A('v4only.test', '198.51.100.11')]),
    ]);
    await daemon.firewall6!.settled();
    expect(v6.chain.filter((l) => l.includes('-j ACCEPT')).map((l) => /-d (\S+) .*--dport (\d+)/.exec(l)?.slice(1).join(' ')).sort()).toEqual(
      ['2001:db8::10/128 443', '2001:db8::10/128 80'],
    );
    expect(v4.chain.filter((l) => l.includes('-j ACCEPT')).map((l) => /-d (\S+) /.exec(l)?.[1]).sort()).toEqual(
      ['198.51.100.10/32', '198.51.100.10/32', '198.51.100.11/32', '198.51.100.11/32'],
    );
  });

  it('with --backend ipset, puts A answers in on-his-name-v4 and AAAA answers in on-his-name-v6, each behind one rule', async () => {
    const [v4, v6, sets] = [fakeIptables(), fakeIptables(), fakeIpset()];
    const config = parseConfig(['--interface', 'br0', '--backend', 'ipset', '--listen', join(dir, 'dnstap.sock'), 'allowed.test.'], {});
    daemon = await startDaemon(config, { runner: v4.runner, runner6: v6.runner, ipset: () => sets.runner, log: recordingLogger().log });
    await send([clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.10'), AAAA('allowed.test', '2001:db8::10')])]);
    await daemon.firewall.settled();
    await daemon.firewall6!.settled();
    expect(sets.sets.get('on-his-name-v4')?.create).toMatch(/family inet counters/);
    expect(sets.sets.get('on-his-name-v6')?.create).toMatch(/family inet6 counters/);
    expect([...sets.sets.get('on-his-name-v4')!.members.keys()]).toEqual(['198.51.100.10']);
    expect([...sets.sets.get('on-his-name-v6')!.members.keys()]).toEqual(['2001:db8::10']);
    expect(v4.chain.filter((l) => l.includes('--match-set')).map((l) => /--match-set (\S+)/.exec(l)?.[1])).toEqual(['on-his-name-v4']);
    expect(v6.chain.filter((l) => l.includes('--match-set')).map((l) => /--match-set (\S+)/.exec(l)?.[1])).toEqual(['on-his-name-v6']);
  });

  it('with --backend iptables, refuses to start, naming the fix, when the network has IPv6 and ip6tables filtering cannot be installed', async () => {
    const config = parseConfig(['--backend', 'iptables', '--listen', join(dir, 'dnstap.sock'), 'a.test'], {});
    const deps = { runner: fakeIptables().runner, docker: dockerWith(true) as never, log: recordingLogger().log };
    await expect(startDaemon(config, { ...deps, runner6: failing })).rejects.toThrow(ConfigError);
    await expect(startDaemon(config, { ...deps, runner6: failing })).rejects.toThrow(/IPv6 can leave the bridge \(the Docker network has IPv6\) but ip6tables filtering cannot be installed.*--backend nftables.*"ip6tables": true/);
    await expect(startDaemon(config, deps)).rejects.toThrow(/IPv6 can leave the bridge \(the Docker network has IPv6\)/);
  });

  it('says so once and carries on when the network has no IPv6 and ip6tables cannot be used', async () => {
    const config = parseConfig(['--listen', join(dir, 'dnstap.sock'), 'a.test'], {});
    const recorder = recordingLogger();
    daemon = await startDaemon(config, { runner: fakeIptables().runner, runner6: failing, docker: dockerWith(false) as never, log: recorder.log });
    expect(daemon.firewall6).toBeUndefined();
    expect(recorder.lines.filter((l) => String(l.msg).startsWith('no IPv6 filtering'))).toHaveLength(1);
  });

  it("refuses addresses in the network's own IPv6 subnet", async () => {
    const v6 = fakeIptables();
    const config = parseConfig(['--listen', join(dir, 'dnstap.sock'), 'allowed.test.'], {});
    const recorder = recordingLogger();
    daemon = await startDaemon(config, { runner: fakeIptables().runner, runner6: v6.runner, docker: dockerWith(true) as never, log: recorder.log });
    await send([clientResponse('192.0.2.10', 'allowed.test', [AAAA('allowed.test', 'fd00:18::5'), AAAA('allowed.test', '2001:db8::5')])]);
    await daemon.firewall6!.settled();
    expect(v6.chain.join('\n')).not.toContain('fd00:18::5');
    expect(v6.chain.filter((l) => l.includes('2001:db8::5/128'))).toHaveLength(2);
    expect(recorder.lines.find((l) => l.address === 'fd00:18::5')?.why).toMatch(/own subnet/);
  });
});

describe('the daemon in inline DNS mode', () => {
  it('answers a container only once the ACCEPT rules of the answer are in the kernel, and names the container', async () => {
    const upstream = await startFakeUpstream((q) => answerTo(q, [A('allowed.test', '198.51.100.10')]));
    try {
      const port = await freePort();
      const kernel = fakeIptables();
      const { lines } = await start(['--dns-listen', `127.0.0.1:${port}`, '--dns-upstream', `127.0.0.1:${upstream.port}`, 'allowed.test.'], kernel);
      let rulesOnArrival: string[] = [];
      const reply = await askUdp(port, query('allowed.test'), 5_000, () => {
        rulesOnArrival = kernel.chain.filter((l) => l.includes('198.51.100.10/32'));
      });
      expect(answerData(reply)).toEqual(['198.51.100.10']);
      expect(rulesOnArrival).toHaveLength(2);
      expect(lines.find((l) => l.msg === 'allow')).toMatchObject({ name: 'allowed.test.', client: '127.0.0.1' });
      expect(daemon!.dns?.hold).toMatchObject({ held: 1, releasedEarly: 0 });
    } finally {
      await upstream.close();
    }
  });

  it('refuses to start with a clear error when the DNS address is taken', async () => {
    const upstream = await startFakeUpstream(() => 'silent');
    try {
      await expect(start(['--dns-listen', `127.0.0.1:${upstream.port}`, '--dns-upstream', '127.0.0.1:1', 'a.test'])).rejects.toThrow(
        /cannot answer DNS on 127.0.0.1:\d+ \(EADDRINUSE\): another DNS server listens there/,
      );
    } finally {
      await upstream.close();
    }
  });
});

function freePort(): Promise<number> {
  const socket = createSocket('udp4');
  return new Promise((resolve) =>
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    }),
  );
}
