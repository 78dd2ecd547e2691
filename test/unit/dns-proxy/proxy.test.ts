import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { holdUntilOpen } from '../../../src/pipeline/hold.js';
import { startDnsProxy, type DnsProxy } from '../../../src/dns-proxy/server.js';
import type { Entry, FirewallBackend } from '../../../src/firewall/backend.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { Pipeline, sameFirewalls } from '../../../src/pipeline/pipeline.js';
import { onePolicy } from '../../../src/pipeline/decision.js';
import { Patterns } from '../../../src/policy/patterns.js';
import { AddressGuard } from '../../../src/policy/special-addresses.js';
import { answerData, answerTo, askTcp, askUdp, rcodeOf, query, startFakeUpstream, type FakeUpstream, type Script } from '../../support/dns.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';
import { pointer, replyTo, v4, wireMessage, wireName } from '../../support/wire.js';

/** A kernel that takes each batch only when the test lets it. */
function gatedBackend() {
  const applied: string[] = [];
  let opened = true;
  let waiting: Array<() => void> = [];
  const backend: FirewallBackend = {
    sync: async () => ({ adopted: [], rebuilt: true }),
    layout: testLayout('br0', [443]),
    where: 'in a test',
    moveTo: async () => ({ adopted: [], rebuilt: true }),
    async apply(add: readonly Entry[]) {
      if (!opened) await new Promise<void>((resolve) => waiting.push(resolve));
      applied.push(...add.map((e) => e.address));
    },
  };
  return {
    backend,
    applied,
    close() {
      opened = false;
    },
    open() {
      opened = true;
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}

const A = (name: string, data: string) => ({ type: 'A' as const, name, ttl: 60, data });
const ZONE: Record<string, dnsPacket.Answer[]> = {
  'allowed.test': [A('allowed.test', '198.51.100.10'), A('allowed.test', '198.51.100.11')],
  'denied.test': [A('denied.test', '203.0.113.10')],
  'big.test': Array.from({ length: 40 }, (_, i) => A('big.test', `198.51.100.${100 + i}`)),
};
const zoneScript: Script = (q) => answerTo(q, ZONE[q.questions![0]!.name.toLowerCase()] ?? []);

let upstream: FakeUpstream | undefined;
let proxy: DnsProxy | undefined;
let firewall: Firewall | undefined;
afterEach(async () => {
  await proxy?.close();
  await upstream?.close();
  firewall?.stop();
  proxy = upstream = firewall = undefined;
});

async function start(
  options: { script?: Script; holdMs?: number; denyNxdomain?: boolean; upstreamTimeoutMs?: number; isClient?: (a: string) => boolean; maxInFlightPerClient?: number; tcpLifetimeMs?: number } = {},
) {
  const kernel = gatedBackend();
  const recorder = recordingLogger();
  firewall = new Firewall({ backend: kernel.backend, log: recorder.log });
  await firewall.start();
  const pipeline = new Pipeline(onePolicy(Patterns.compile(['allowed.test', '*.big.test', 'big.test'])), new AddressGuard(), sameFirewalls({ 4: firewall }), recorder.log);
  const hold = holdUntilOpen({ pipeline, holdMs: options.holdMs ?? 5_000, denyNxdomain: options.denyNxdomain ?? false, log: recorder.log });
  upstream = await startFakeUpstream(options.script ?? zoneScript);
  proxy = await startDnsProxy({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { host: '127.0.0.1', port: upstream.port },
    upstreamTimeoutMs: options.upstreamTimeoutMs ?? 2_000,
    hooks: hold,
    log: recorder.log,
    ...(options.isClient ? { isClient: options.isClient } : {}),
    ...(options.maxInFlightPerClient ? { maxInFlightPerClient: options.maxInFlightPerClient } : {}),
    ...(options.tcpLifetimeMs ? { tcpLifetimeMs: options.tcpLifetimeMs } : {}),
  });
  return { kernel, hold, pipeline, firewall, upstream, proxy, ...recorder };
}

const addressesOf = answerData;

/** Waits on the event loop (not a timer) until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 2));
}

/** One datagram, from a socket bound where the test says; the socket is the caller's to close. */
async function sendUdp(port: number, bytes: Buffer, from: { address?: string; port?: number } = {}) {
  const { createSocket } = await import('node:dgram');
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(from.port ?? 0, from.address ?? '127.0.0.1', () => resolve()));
  socket.send(bytes, port, '127.0.0.1');
  return socket;
}

describe('inline DNS proxy', () => {
  it('holds an allowed answer until every one of its addresses is in the kernel', async () => {
    const lab = await start();
    lab.kernel.close();
    let inKernelOnArrival: boolean[] = [];
    const asked = askUdp(lab.proxy.address.port, query('allowed.test'), 5_000, () => {
      inKernelOnArrival = ['198.51.100.10', '198.51.100.11'].map((a) => lab.firewall.isAllowed(a));
    });
    // The upstream has answered and the rules are queued, but the kernel has not taken them.
    while (lab.upstream.received.length === 0 || lab.firewall.stats.applies > 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    expect(inKernelOnArrival).toEqual([]);
    lab.kernel.open();
    expect(addressesOf(await asked)).toEqual(['198.51.100.10', '198.51.100.11']);
    expect(inKernelOnArrival).toEqual([true, true]);
    expect(lab.hold.stats).toMatchObject({ held: 1, releasedEarly: 0 });
    expect(lab.lines.find((l) => l.msg === 'allow')).toMatchObject({ name: 'allowed.test.', client: '127.0.0.1', added: ['198.51.100.10', '198.51.100.11'] });
  });

  it('releases the answer when the hold bound runs out, and says so', async () => {
    const lab = await start({ holdMs: 30 });
    lab.kernel.close();
    expect(addressesOf(await askUdp(lab.proxy.address.port, query('allowed.test')))).toEqual(['198.51.100.10', '198.51.100.11']);
    expect(lab.firewall.isAllowed('198.51.100.10')).toBe(false);
    expect(lab.hold.stats).toMatchObject({ held: 1, releasedEarly: 1 });
    expect(lab.lines.some((l) => l.msg.startsWith('released a DNS answer before its rules'))).toBe(true);
    lab.kernel.open();
  });

  it('answers a denied name normally and opens nothing, or NXDOMAIN without asking upstream with --deny-nxdomain', async () => {
    const normal = await start();
    expect(addressesOf(await askUdp(normal.proxy.address.port, query('denied.test')))).toEqual(['203.0.113.10']);
    expect(normal.firewall.isAllowed('203.0.113.10')).toBe(false);
    expect(normal.pipeline.stats.decisions.deny).toBe(1);
    await proxy!.close();
    await upstream!.close();
    proxy = upstream = undefined;

    const strict = await start({ denyNxdomain: true });
    const reply = dnsPacket.decode((await askUdp(strict.proxy.address.port, query('denied.test', { id: 77, edns: true })))!);
    expect(reply).toMatchObject({ id: 77, rcode: 'NXDOMAIN', answers: [] });
    expect(reply.additionals).toEqual([expect.objectContaining({ type: 'OPT' })]);
    expect(strict.upstream.received).toHaveLength(0);
    expect(strict.hold.stats.nxdomain).toBe(1);
    expect(strict.lines.find((l) => l.msg === 'deny')).toMatchObject({ name: 'denied.test.', client: '127.0.0.1' });
    // An allowed name is still forwarded and opened.
    expect(addressesOf(await askUdp(strict.proxy.address.port, query('allowed.test')))).toHaveLength(2);
  });

  // The one label "allowed.test" (a dot inside it) spells the allowed name but is another name.
  it('answers NXDOMAIN with --deny-nxdomain to a question whose label holds a dot, without asking upstream, and logs it escaped', async () => {
    const lab = await start({ denyNxdomain: true, upstreamTimeoutMs: 300 });
    const reply = (await askUdp(lab.proxy.address.port, wireMessage(wireName('allowed.test'), [], { id: 78, query: true })))!;
    expect(reply.readUInt16BE(0)).toBe(78);
    expect(reply.readUInt16BE(2) & 0x800f).toBe(0x8003); // a response, NXDOMAIN
    expect(lab.upstream.received).toHaveLength(0);
    expect(lab.hold.stats.nxdomain).toBe(1);
    expect(lab.firewall.isAllowed('198.51.100.10')).toBe(false);
    expect(lab.lines.find((l) => l.msg === 'deny')).toMatchObject({ name: 'allowed\\.test.', client: '127.0.0.1' });
  });

  it('without --deny-nxdomain, opens nothing for an upstream answer to a question whose label holds a dot', async () => {
    // An upstream that answers the question as it was asked (dns-packet would re-encode it as two labels).
    const script: Script = () => replyTo(upstream!.received.at(-1)!.bytes, [{ owner: pointer(12), type: 'A', data: v4(10) }]);
    const lab = await start({ script });
    expect(addressesOf(await askUdp(lab.proxy.address.port, wireMessage(wireName('allowed.test'), [], { id: 79, query: true })))).toEqual(['198.51.100.10']);
    expect(lab.upstream.received).toHaveLength(1);
    expect(lab.firewall.isAllowed('198.51.100.10')).toBe(false);
    expect(lab.pipeline.stats.decisions).toMatchObject({ allow: 0, deny: 1 });
    expect(lab.lines.find((l) => l.msg === 'deny')).toMatchObject({ name: 'allowed\\.test.', client: '127.0.0.1' });
  });

  it('answers SERVFAIL when the upstream stays silent past the bound', async () => {
    const lab = await start({ script: () => 'silent', upstreamTimeoutMs: 100 });
    const reply = dnsPacket.decode((await askUdp(lab.proxy.address.port, query('allowed.test', { id: 3 })))!);
    expect(reply).toMatchObject({ id: 3, rcode: 'SERVFAIL' });
    expect(lab.proxy.stats.upstreamFailures).toBe(1);
    expect(lab.lines.some((l) => String(l.msg).includes('did not answer: SERVFAIL'))).toBe(true);
  });

  it('asks upstream with a fresh random ID and mixed letter case, EDNS options untouched, and gives the client back its own', async () => {
    const lab = await start();
    const sent = query('allowed.test', { id: 1234, edns: true });
    const replies = await Promise.all(Array.from({ length: 8 }, () => askUdp(lab.proxy.address.port, sent)));
    const upstreamIds = new Set(lab.upstream.received.map((r) => r.bytes.readUInt16BE(0)));
    const spellings = new Set(lab.upstream.received.map((r) => dnsPacket.decode(r.bytes).questions![0]!.name));
    expect(upstreamIds.size).toBeGreaterThan(1);
    expect(upstreamIds.has(1234)).toBe(false);
    expect(spellings.size).toBeGreaterThan(1);
    for (const r of lab.upstream.received) {
      expect(dnsPacket.decode(r.bytes).questions![0]!.name.toLowerCase()).toBe('allowed.test');
      // Past the ID and the question, byte for byte what the client sent: its EDNS cookie included.
      expect(r.bytes.subarray(12 + 14)).toEqual(sent.subarray(12 + 14));
    }
    for (const reply of replies) {
      expect(reply!.readUInt16BE(0)).toBe(1234);
      expect(dnsPacket.decode(reply!).questions![0]!.name).toBe('allowed.test');
    }
  });

  it('ignores answers forged with what the client chose (its ID, its spelling), and opens nothing from them', async () => {
    // The forger knows the client's query: it answers with that ID and question, and an address of its own.
    const forged: Script = (q) => answerTo({ ...q, id: 4242, questions: [{ name: 'allowed.test', type: 'A', class: 'IN' }] }, [A('allowed.test', '203.0.113.66')]);
    const lab = await start({ script: forged, upstreamTimeoutMs: 300 });
    expect(rcodeOf((await askUdp(lab.proxy.address.port, query('allowed.test', { id: 4242 })))!)).toBe('SERVFAIL');
    expect(lab.proxy.stats.mismatchedReplies).toBe(1);
    expect(lab.firewall.trackedCount).toBe(0);
    // The right ID with the question in other letters is not the answer either.
    const recased: Script = (q) => answerTo({ ...q, questions: [{ ...q.questions![0]!, name: q.questions![0]!.name.toLowerCase() }] }, [A('allowed.test', '203.0.113.66')]);
    const again = await start({ script: (q) => (/[A-Z]/.test(q.questions![0]!.name) ? recased(q, 'udp') : 'silent'), upstreamTimeoutMs: 300 });
    for (let i = 0; i < 4; i++) expect(rcodeOf((await askUdp(again.proxy.address.port, query('allowed.test')))!)).toBe('SERVFAIL');
    expect(again.firewall.trackedCount).toBe(0);
  });

  it('answers nobody outside its clients: no reply is reflected to a forged source', async () => {
    const lab = await start({ isClient: (a) => a === '127.0.0.1' });
    const forged = await sendUdp(lab.proxy.address.port, query('allowed.test'), { address: '127.0.0.2' });
    expect(await askTcp(lab.proxy.address.port, [query('allowed.test')], 2_000, '127.0.0.2')).toEqual([]); // hung up on
    await until(() => lab.proxy.stats.refused === 2);
    forged.close();
    expect(lab.proxy.stats.queries).toEqual({ udp: 0, tcp: 0 }); // never read as a query, so never answered
    expect(lab.upstream.received).toHaveLength(0);
    expect(addressesOf(await askUdp(lab.proxy.address.port, query('allowed.test')))).toHaveLength(2);
  });

  it.each([7, 19])('never answers UDP port %i, whose service would answer back (echo, chargen): no loop can start', async (port) => {
    const lab = await start();
    const notimp = Buffer.from(query('allowed.test'));
    notimp.writeUInt16BE(0x2800, 2); // opcode 5: anyone else would get a NOTIMP back
    const socket = await sendUdp(lab.proxy.address.port, notimp, { address: '127.0.0.1', port });
    await until(() => lab.proxy.stats.refused === 1);
    socket.close();
    expect(lab.proxy.stats.queries.udp).toBe(0);
    expect(lab.proxy.stats.malformed).toBe(0);
  });

  it("gives each client its share of the upstream's slots: one flooding client cannot starve another", async () => {
    const lab = await start({ script: (q) => (q.questions![0]!.name.toLowerCase() === 'slow.test' ? 'silent' : zoneScript(q, 'udp')), maxInFlightPerClient: 2 });
    const port = lab.proxy.address.port;
    const stuck = [await sendUdp(port, query('slow.test')), await sendUdp(port, query('slow.test'))];
    await until(() => lab.upstream.received.length === 2);
    expect(rcodeOf((await askUdp(port, query('allowed.test')))!)).toBe('SERVFAIL');
    expect(lab.proxy.stats.overloaded).toBe(1);
    expect(addressesOf(await askUdp(port, query('allowed.test'), 2_000, undefined, { address: '127.0.0.2' }))).toHaveLength(2);
    for (const socket of stuck) socket.close();
  });

  it('ends a TCP connection at the end of its life even while the client trickles bytes', async () => {
    const lab = await start({ tcpLifetimeMs: 300 });
    const { connect } = await import('node:net');
    const trickler = connect(lab.proxy.address.port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => trickler.once('close', () => resolve()));
    // A message announced as 200 bytes, then one byte of it every 50 ms: the idle timer (10 s)
    // never fires and the message never completes; only the lifetime can end it.
    trickler.write(Buffer.from([0, 200]));
    const drip = setInterval(() => trickler.writable && trickler.write(Buffer.from([0])), 50);
    await closed;
    clearInterval(drip);
  }, 3_000); // the idle timer alone would take 10 s

  it('hangs up at once on a client past its number of TCP connections, and keeps the others', async () => {
    const lab = await start();
    const { connect } = await import('node:net');
    const sockets = Array.from({ length: 17 }, () => connect(lab.proxy.address.port, '127.0.0.1'));
    const closes = sockets.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    await Promise.race(closes);
    expect(sockets.filter((socket) => socket.destroyed)).toHaveLength(1);
    expect(addressesOf((await askTcp(lab.proxy.address.port, [query('allowed.test')], 2_000, '127.0.0.2'))[0])).toHaveLength(2);
    for (const socket of sockets) socket.destroy();
  });

  it('does not crash when an answer comes back after the proxy closed (the gateway moved, or a stop)', async () => {
    let answerNow: () => void = () => undefined;
    const later = new Promise<void>((resolve) => (answerNow = resolve));
    const lab = await start({ script: async (q) => later.then(() => answerTo(q, ZONE['denied.test']!)) });
    const asked = askUdp(lab.proxy.address.port, query('denied.test'), 500);
    while (lab.upstream.received.length === 0) await new Promise((r) => setImmediate(r));
    await lab.proxy.close();
    proxy = undefined;
    answerNow();
    // The upstream's answer reaches the proxy's upstream socket, then the decision: a deny is logged,
    // and the reply meets a closed socket. Before the fix that was an unhandled rejection: the daemon exited.
    await until(() => lab.lines.some((l) => l.msg === 'deny'));
    expect(await asked).toBeUndefined();
  });

  it('sends a client to TCP with TC when the answer is too big for its UDP size, and holds the TCP answer too', async () => {
    const lab = await start();
    const overUdp = (await askUdp(lab.proxy.address.port, query('big.test', { id: 9 })))!;
    expect(dnsPacket.decode(overUdp)).toMatchObject({ id: 9, flag_tc: true, answers: [] });
    expect(lab.proxy.stats.truncated).toBe(1);
    lab.kernel.close();
    const pending = askTcp(lab.proxy.address.port, [query('big.test', { id: 10 })], 5_000);
    while (lab.firewall.stats.applies > 1 || lab.upstream.received.filter((r) => r.transport === 'tcp').length === 0) await new Promise((r) => setTimeout(r, 5));
    lab.kernel.open();
    const [overTcp] = await pending;
    expect(dnsPacket.decode(overTcp!).answers).toHaveLength(40);
    expect(lab.firewall.isAllowed('198.51.100.139')).toBe(true);
  });

  it('passes the upstream TC bit on, and answers several queries on one TCP connection', async () => {
    const lab = await start({
      script: (q, transport) => (transport === 'udp' ? answerTo(q, [], { flags: dnsPacket.TRUNCATED_RESPONSE }) : zoneScript(q, transport)),
    });
    expect(dnsPacket.decode((await askUdp(lab.proxy.address.port, query('allowed.test')))!).flag_tc).toBe(true);
    const replies = await askTcp(lab.proxy.address.port, [query('allowed.test', { id: 1 }), query('denied.test', { id: 2 })]);
    expect(replies.map((r) => dnsPacket.decode(r).id).sort()).toEqual([1, 2]);
    expect(lab.firewall.isAllowed('198.51.100.10')).toBe(true);
  });

  it('answers FORMERR to a broken query, nothing to a runt or a response, and keeps serving', async () => {
    const lab = await start();
    const broken = query('a.long.name.test', { id: 6 }).subarray(0, 18);
    expect(dnsPacket.decode((await askUdp(lab.proxy.address.port, broken))!)).toMatchObject({ id: 6, rcode: 'FORMERR' });
    expect(await askUdp(lab.proxy.address.port, Buffer.from('hi'), 200)).toBeUndefined();
    expect(lab.upstream.received).toHaveLength(0);
    expect(addressesOf(await askUdp(lab.proxy.address.port, query('allowed.test')))).toHaveLength(2);
    expect(lab.proxy.stats.malformed).toBe(2);
  });

  it('ignores a reply from the upstream that does not answer the query (wrong id)', async () => {
    const lab = await start({ script: (q) => ({ ...answerTo(q, ZONE['allowed.test']!), id: (q.id! + 1) & 0xffff }), upstreamTimeoutMs: 150 });
    expect(rcodeOf((await askUdp(lab.proxy.address.port, query('allowed.test')))!)).toBe('SERVFAIL');
    expect(lab.firewall.isAllowed('198.51.100.10')).toBe(false);
  });
});
