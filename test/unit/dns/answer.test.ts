import { describe, expect, it } from 'vitest';
import { MAX_CNAME_CHAIN, extractAnswer } from '../../../src/dns/answer.js';
import { DecodeError } from '../../../src/util/errors.js';
import { dnsResponse } from '../../support/dnstap.js';
import { pointer, v4, wireMessage, wireName } from '../../support/wire.js';

const A = (name: string, data: string, ttl = 300) => ({ type: 'A' as const, name, data, ttl });
const AAAA = (name: string, data: string, ttl = 300) => ({ type: 'AAAA' as const, name, data, ttl });
const CNAME = (name: string, data: string) => ({ type: 'CNAME' as const, name, data, ttl: 300 });

describe('extractAnswer', () => {
  it('collects every A record of the question name, with TTLs, normalising names', () => {
    const answer = extractAnswer(dnsResponse('Multi.Example.COM', [A('multi.example.com', '198.51.100.1', 60), A('MULTI.example.com', '198.51.100.2', 30)]));
    expect(answer).toEqual({
      name: 'multi.example.com.',
      rcode: 'NOERROR',
      chain: ['multi.example.com.'],
      ipv4: [
        { address: '198.51.100.1', ttl: 60 },
        { address: '198.51.100.2', ttl: 30 },
      ],
      ipv6: [],
    });
  });

  it('follows a CNAME chain in any order and takes the addresses at its end', () => {
    const answer = extractAnswer(
      dnsResponse('www.example.com', [A('edge.cdn.test', '198.51.100.9'), CNAME('mid.cdn.test', 'edge.cdn.test'), CNAME('www.example.com', 'mid.cdn.test')]),
    );
    expect(answer.chain).toEqual(['www.example.com.', 'mid.cdn.test.', 'edge.cdn.test.']);
    expect(answer.ipv4).toEqual([{ address: '198.51.100.9', ttl: 300 }]);
  });

  it('ignores records off the chain, in authority and in additional sections', () => {
    const answer = extractAnswer(
      dnsResponse('www.example.com', [CNAME('www.example.com', 'edge.test'), A('edge.test', '198.51.100.9'), A('evil.test', '203.0.113.66'), CNAME('other.test', 'evil.test')], {
        authorities: [A('ns.example.com', '203.0.113.67')],
        additionals: [A('www.example.com', '203.0.113.68')],
      }),
    );
    expect(answer.ipv4.map((r) => r.address)).toEqual(['198.51.100.9']);
  });

  it('records AAAA answers apart from A answers', () => {
    const answer = extractAnswer(dnsResponse('v6.test', [AAAA('v6.test', '2001:db8::10'), A('v6.test', '198.51.100.14')]));
    expect(answer.ipv4).toEqual([{ address: '198.51.100.14', ttl: 300 }]);
    expect(answer.ipv6).toEqual([{ address: '2001:db8::10', ttl: 300 }]);
  });

  it('keeps one entry with the longest TTL for an address listed twice', () => {
    expect(extractAnswer(dnsResponse('a.test', [A('a.test', '198.51.100.1', 10), A('a.test', '198.51.100.1', 90)])).ipv4).toEqual([
      { address: '198.51.100.1', ttl: 90 },
    ]);
  });

  it('returns no addresses for a non-NOERROR answer, even if it carries records', () => {
    const answer = extractAnswer(dnsResponse('nx.test', [A('nx.test', '198.51.100.1')], { rcode: 3 }));
    expect(answer).toMatchObject({ rcode: 'NXDOMAIN', ipv4: [] });
  });

  it('stops at a CNAME loop and at the chain bound', () => {
    expect(extractAnswer(dnsResponse('a.test', [CNAME('a.test', 'b.test'), CNAME('b.test', 'a.test'), A('b.test', '198.51.100.3')])).chain).toEqual([
      'a.test.',
      'b.test.',
    ]);
    const long = Array.from({ length: 40 }, (_, i) => CNAME(`n${i}.test`, `n${i + 1}.test`));
    const answer = extractAnswer(dnsResponse('n0.test', [...long, A('n40.test', '198.51.100.4')]));
    expect(answer.chain).toHaveLength(MAX_CNAME_CHAIN + 1);
    expect(answer.ipv4).toEqual([]);
  });

  it.each([
    ['a short header', Buffer.from([1, 2, 3])],
    ['a truncated record', dnsResponse('a.test', [A('a.test', '198.51.100.1')]).subarray(0, 38)],
  ])('throws a DecodeError for %s', (_, bytes) => {
    expect(() => extractAnswer(bytes)).toThrow(DecodeError);
  });

  it('throws a DecodeError for a response without a question', () => {
    const bytes = dnsResponse('a.test', []);
    bytes.writeUInt16BE(0, 4); // QDCOUNT
    expect(() => extractAnswer(bytes.subarray(0, 12))).toThrow(/no question/);
  });

  // A label may hold a '.': the single label "edge.cdn" is not the two labels "edge" and "cdn".
  it('keeps a CNAME target holding a dot-label apart from the name its text spells', () => {
    const question = wireName('www', 'example', 'test');
    const answer = extractAnswer(
      wireMessage(question, [
        { owner: pointer(12), type: 'CNAME', data: wireName('edge.cdn', 'test') },
        { owner: wireName('edge', 'cdn', 'test'), type: 'A', data: v4(9) },
        { owner: wireName('EDGE.cdn', 'test'), type: 'A', data: v4(10) },
      ]),
    );
    expect(answer.chain).toEqual(['www.example.test.', 'edge\\.cdn.test.']);
    expect(answer.ipv4).toEqual([{ address: '198.51.100.10', ttl: 60 }]);
  });

  it('takes no record whose owner holds a dot-label for the name its text spells', () => {
    const answer = extractAnswer(
      wireMessage(wireName('a', 'test'), [
        { owner: wireName('a.test'), type: 'A', data: v4(1) },
        { owner: wireName('a.test'), type: 'CNAME', data: wireName('b', 'test') },
        { owner: wireName('b', 'test'), type: 'A', data: v4(2) },
        { owner: pointer(12), type: 'A', data: v4(3) },
      ]),
    );
    expect(answer.chain).toEqual(['a.test.']);
    expect(answer.ipv4).toEqual([{ address: '198.51.100.3', ttl: 60 }]);
  });

  it('follows a chain compressed as servers send it: owners that point at the names they repeat', () => {
    const question = wireName('www', 'example', 'test');
    const cnameAt = 12 + question.length + 4;
    // The CNAME record: owner pointer (2), type..rdlength (10), then the target "edge.cdn.test." in full.
    const targetAt = cnameAt + 2 + 10;
    const answer = extractAnswer(
      wireMessage(question, [
        { owner: pointer(12), type: 'CNAME', data: wireName('edge', 'cdn', 'test') },
        { owner: pointer(targetAt), type: 'A', data: v4(9) },
        { owner: pointer(targetAt + 5), type: 'A', data: v4(10) }, // "cdn.test.": a suffix of the target, another name
        { owner: pointer(12 + 4), type: 'A', data: v4(11) }, // "example.test."
      ]),
    );
    expect(answer.chain).toEqual(['www.example.test.', 'edge.cdn.test.']);
    expect(answer.ipv4).toEqual([{ address: '198.51.100.9', ttl: 60 }]);
  });
});
