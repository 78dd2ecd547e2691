import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLASSIC_UDP_LIMIT, checkQuery, fitForUdp, isTruncated, reply, type Query } from '../../../src/dns-proxy/message.js';
import { TcpMessages, withLength } from '../../../src/dns-proxy/tcp-framing.js';
import { answerTo, query, rcodeOf } from '../../support/dns.js';
import { wireMessage, wireName } from '../../support/wire.js';

function parsed(bytes: Buffer): Query {
  const check = checkQuery(bytes);
  if (!check.ok) throw new Error(check.why);
  return check.query;
}

describe('checkQuery', () => {
  it('reads the id, the normalised name, and the client UDP limit (512 without EDNS, its payload size with)', () => {
    const plain = parsed(query('Example.COM', { id: 7 }));
    expect(plain).toMatchObject({ id: 7, name: 'example.com.', udpLimit: CLASSIC_UDP_LIMIT, edns: false });
    const edns = parsed(query('example.com', { edns: true }));
    expect(edns).toMatchObject({ udpLimit: 1232, edns: true });
  });

  it('drops runts and responses without a reply, so the proxy never feeds a loop or a reflection', () => {
    expect(checkQuery(Buffer.alloc(5))).toMatchObject({ ok: false, why: expect.stringContaining('shorter than a DNS header') });
    const response = dnsPacket.encode({ id: 1, type: 'response', questions: [{ name: 'a.test', type: 'A', class: 'IN' }] });
    const check = checkQuery(response);
    expect(check.ok).toBe(false);
    expect(check.ok === false && check.reply).toBeFalsy();
  });

  it('answers NOTIMP to another opcode and FORMERR to a broken or multi-question query, with the client id', () => {
    const notify = query('a.test', { id: 99 });
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2); // NOTIFY
    const notimp = checkQuery(notify);
    expect(notimp.ok === false && dnsPacket.decode(notimp.reply!)).toMatchObject({ id: 99, rcode: 'NOTIMP', type: 'response' });

    const two = dnsPacket.encode({ id: 5, type: 'query', questions: [{ name: 'a.test', type: 'A' }, { name: 'b.test', type: 'A' }] });
    const formerr = checkQuery(two);
    expect(formerr.ok === false && dnsPacket.decode(formerr.reply!)).toMatchObject({ id: 5, rcode: 'FORMERR' });

    const cut = query('a.long.name.test').subarray(0, 18);
    const broken = checkQuery(cut);
    expect(broken).toMatchObject({ ok: false, why: expect.stringContaining('malformed') });
    expect(broken.ok === false && rcodeOf(broken.reply!)).toBe('FORMERR');
  });
});

describe('checkQuery on names whose labels hold a dot', () => {
  // --deny-nxdomain judges this name before anything is asked upstream: it must be the wire name.
  it('names the one label "allowed.test" with the dot escaped, not as the two labels it spells', () => {
    expect(parsed(wireMessage(wireName('allowed.test'), [], { query: true }))).toMatchObject({ name: 'allowed\\.test.' });
    expect(parsed(wireMessage(wireName('Allowed.Test', 'x\\'), [], { query: true }))).toMatchObject({ name: 'allowed\\.test.x\\\\.' });
  });
});

describe('checkQuery on compression pointer loops', () => {
  it('answers FORMERR to a question name that points at itself', () => {
    const loop = Buffer.alloc(18);
    loop.writeUInt16BE(1, 4);
    loop.set([0xc0, 12], 12);
    const labelThenLoop = Buffer.alloc(20);
    labelThenLoop.writeUInt16BE(1, 4);
    labelThenLoop.set([1, 0x61, 0xc0, 12], 12);
    for (const bytes of [loop, labelThenLoop]) {
      const check = checkQuery(bytes);
      expect(check).toMatchObject({ ok: false, why: expect.stringContaining('pointer') });
      expect(check.ok === false && rcodeOf(check.reply!)).toBe('FORMERR');
    }
  });
});

describe('reply', () => {
  it('keeps the id, RD and the question, and answers EDNS with EDNS', () => {
    const q = parsed(query('a.test', { id: 321, edns: true }));
    const out = dnsPacket.decode(reply(q, 'SERVFAIL'));
    expect(out).toMatchObject({ id: 321, type: 'response', rcode: 'SERVFAIL', flag_rd: true, flag_ra: true, questions: [{ name: 'a.test', type: 'A', class: 'IN' }] });
    expect(out.additionals).toEqual([expect.objectContaining({ type: 'OPT', udpPayloadSize: 1232 })]);
    expect(dnsPacket.decode(reply(parsed(query('a.test')), 'NXDOMAIN')).additionals).toEqual([]);
  });
});

describe('fitForUdp', () => {
  const q = parsed(query('big.test', { id: 11 }));
  const big = dnsPacket.encode(
    answerTo(dnsPacket.decode(query('big.test', { id: 11 })), Array.from({ length: 40 }, (_, i) => ({ type: 'A' as const, name: 'big.test', ttl: 60, data: `198.51.100.${i}` }))),
  );

  it('passes a reply that fits and truncates one that does not, keeping the rcode and setting TC', () => {
    const small = reply(q, 'NOERROR');
    expect(fitForUdp(small, q)).toBe(small);
    expect(big.length).toBeGreaterThan(CLASSIC_UDP_LIMIT);
    const cut = fitForUdp(big, q);
    expect(cut.length).toBeLessThanOrEqual(CLASSIC_UDP_LIMIT);
    expect(isTruncated(cut)).toBe(true);
    expect(dnsPacket.decode(cut)).toMatchObject({ id: 11, rcode: 'NOERROR', answers: [], questions: [{ name: 'big.test' }] });
  });

  it('lets an EDNS client take up to its payload size', () => {
    const edns = parsed(query('big.test', { id: 11, edns: true }));
    expect(fitForUdp(big, edns)).toBe(big);
  });
});

describe('TcpMessages', () => {
  it('gives whole messages whatever the chunking', () => {
    const messages = [query('a.test'), query('b.test', { edns: true }), Buffer.alloc(0), query('c.test')];
    const stream = Buffer.concat(messages.map(withLength));
    for (let size = 1; size <= stream.length; size += 7) {
      const reader = new TcpMessages();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) out.push(...reader.push(stream.subarray(at, at + size)));
      expect(out).toEqual(messages);
      expect(reader.buffered).toBe(0);
    }
  });
});

describe('hostile queries', () => {
  const seed = 20261123;
  const mutate = (bytes: Buffer, flips: Array<[number, number]>, cut: number) => {
    const copy = Buffer.from(bytes.subarray(0, Math.max(0, bytes.length - cut)));
    for (const [at, bit] of flips) if (copy.length) copy[at % copy.length]! ^= 1 << bit;
    return copy;
  };

  it('never throws on random bytes, and every reply it owes is a response to the same id that dns-packet reads', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const check = checkQuery(bytes);
        if (check.ok || !check.reply) return;
        const decoded = dnsPacket.decode(check.reply);
        expect(decoded.type).toBe('response');
        expect(decoded.id).toBe(Buffer.from(bytes).readUInt16BE(0));
      }),
      { seed, numRuns: 2000 },
    );
  });

  it('on mutated real queries: a query it accepts has a question that replies carry back intact', () => {
    const names = fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}$/);
    fc.assert(
      fc.property(names, fc.boolean(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 4 }), fc.nat(8), (name, edns, flips, cut) => {
        const bytes = mutate(query(name, { edns }), flips, cut);
        const check = checkQuery(bytes);
        if (!check.ok) return;
        for (const rcode of ['SERVFAIL', 'NXDOMAIN'] as const) {
          const out = reply(check.query, rcode);
          expect(out.readUInt16BE(0)).toBe(check.query.id);
          expect(out.readUInt16BE(2) & 0x8000).toBe(0x8000);
          expect(out.subarray(12, 12 + check.query.question.length)).toEqual(check.query.question);
          expect(fitForUdp(out, check.query)).toBe(out);
        }
      }),
      { seed, numRuns: 2000 },
    );
  });
});
