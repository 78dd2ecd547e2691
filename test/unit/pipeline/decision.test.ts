import { describe, expect, it } from 'vitest';
import { decide, decideResponse, onePolicy } from '../../../src/pipeline/decision.js';
import { MessageType } from '../../../src/dnstap/schema.js';
import { DecodeError } from '../../../src/util/errors.js';
import { Patterns } from '../../../src/policy/patterns.js';
import { AddressGuard } from '../../../src/policy/special-addresses.js';
import { addressBytes, clientResponse, dnsResponse, dnstapFrame } from '../../support/dnstap.js';
import { pointer, v4, wireMessage, wireName } from '../../support/wire.js';

const policy = onePolicy(Patterns.compile(['allowed.test.', '*.cdn.test.']));
const A = (name: string, data: string) => ({ type: 'A' as const, name, data, ttl: 60 });
const frame = (response: Buffer) => dnstapFrame({ queryAddress: addressBytes('192.0.2.10'), responseMessage: response });

describe('decide', () => {
  it('allows an answer for an allowed question name, with its addresses and the pattern', () => {
    expect(decide(clientResponse('192.0.2.10', 'Allowed.Test', [A('allowed.test', '198.51.100.1')]), policy)).toEqual({
      outcome: 'allow', policy: 'default',
      name: 'allowed.test.',
      client: '192.0.2.10',
      pattern: 'allowed.test.',
      ipv4: [{ address: '198.51.100.1', ttl: 60 }],
      ipv6: [],
      refused: [],
    });
  });

  it('refuses special-purpose addresses of an allowed name, saying why, unless --allow-cidr opens them', () => {
    const response = clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '169.254.169.254'), A('allowed.test', '198.51.100.1')]);
    expect(decide(response, policy)).toMatchObject({
      outcome: 'allow', policy: 'default',
      ipv4: [{ address: '198.51.100.1' }],
      refused: [{ address: '169.254.169.254', why: expect.stringMatching(/metadata/) }],
    });
    expect(decide(response, policy, new AddressGuard(['169.254.169.254/32']))).toMatchObject({ ipv4: [{ address: '169.254.169.254' }, { address: '198.51.100.1' }], refused: [] });
  });

  it('refuses special-purpose IPv6 addresses of an allowed name too, and keeps the others', () => {
    const AAAA = (data: string) => ({ type: 'AAAA' as const, name: 'allowed.test', data, ttl: 60 });
    const response = clientResponse('192.0.2.10', 'allowed.test', [AAAA('::1'), AAAA('::ffff:169.254.169.254'), AAAA('2001:db8::1')]);
    expect(decide(response, policy)).toMatchObject({
      outcome: 'allow', policy: 'default',
      ipv6: [{ address: '2001:db8::1' }],
      refused: [{ address: '::1', why: expect.stringMatching(/loopback/) }, { address: '::ffff:a9fe:a9fe', why: expect.stringMatching(/metadata/) }],
    });
  });

  it("decodes a denied answer's addresses only when asked (the blocked view names what is blocked by them)", () => {
    const AAAA = { type: 'AAAA' as const, name: 'tracker.test', data: '2001:db8::7', ttl: 60 };
    const response = dnsResponse('tracker.test', [A('tracker.test', '198.51.100.7'), AAAA]);
    expect(decide(frame(response), policy)).toEqual({ outcome: 'deny', policy: 'default', name: 'tracker.test.', client: '192.0.2.10' });
    expect(decide(frame(response), policy, undefined, true)).toEqual({ outcome: 'deny', policy: 'default', name: 'tracker.test.', client: '192.0.2.10', addresses: ['198.51.100.7', '2001:db8::7'] });
    expect(decideResponse(response, '192.0.2.10', policy, undefined, true)).toMatchObject({ outcome: 'deny', addresses: ['198.51.100.7', '2001:db8::7'] });
  });

  it('denies by the question name, whatever the CNAME chain leads to', () => {
    const response = dnsResponse('evil.test', [{ type: 'CNAME', name: 'evil.test', data: 'www.cdn.test', ttl: 60 }, A('www.cdn.test', '198.51.100.2')]);
    expect(decide(frame(response), policy)).toEqual({ outcome: 'deny', policy: 'default', name: 'evil.test.', client: '192.0.2.10' });
  });

  it('does not decode the records of a denied answer', () => {
    const response = dnsResponse('denied.test', [A('denied.test', '203.0.113.10')]);
    const broken = response.subarray(0, response.length - 3); // the answer record is cut short
    expect(decide(frame(broken), policy)).toMatchObject({ outcome: 'deny' });
    expect(() => decide(frame(Buffer.concat([broken.subarray(0, 12), Buffer.from('allowed')])), policy)).toThrow(DecodeError);
  });

  it.each([
    ['a client query', dnstapFrame({ type: MessageType.CLIENT_QUERY }), { reason: 'not-a-client-response' }],
    ['a response without "full"', dnstapFrame({ queryAddress: addressBytes('192.0.2.10') }), { reason: 'no-response-message' }],
    ['an NXDOMAIN', frame(dnsResponse('allowed.test', [], { rcode: 3 })), { reason: 'not-noerror', rcode: 'NXDOMAIN' }],
    ['an empty answer', frame(dnsResponse('allowed.test', [])), { reason: 'no-addresses' }],
    ['an allowed name answered with a CNAME only', frame(dnsResponse('allowed.test', [{ type: 'CNAME', name: 'allowed.test', data: 'x.test', ttl: 5 }])), { reason: 'no-addresses' }],
  ])('skips %s', (_, bytes, expected) => {
    expect(decide(bytes, policy)).toMatchObject({ outcome: 'skip', ...expected });
  });

  // The wire name is one label, "allowed.test", under the root: no pattern spells it.
  it('denies a question whose one label holds a dot, naming it with the dot escaped', () => {
    const response = wireMessage(wireName('allowed.test'), [{ owner: pointer(12), type: 'A', data: v4(1) }]);
    expect(decide(frame(response), policy)).toEqual({ outcome: 'deny', policy: 'default', name: 'allowed\\.test.', client: '192.0.2.10' });
    expect(decideResponse(response, '192.0.2.10', policy)).toEqual({ outcome: 'deny', policy: 'default', name: 'allowed\\.test.', client: '192.0.2.10' });
  });

  it('denies a dot-label that a wildcard would take for labels of its own (x.cdn under test., not x under cdn.test.)', () => {
    const response = wireMessage(wireName('x.cdn', 'test'), [{ owner: pointer(12), type: 'A', data: v4(1) }]);
    expect(decide(frame(response), policy)).toEqual({ outcome: 'deny', policy: 'default', name: 'x\\.cdn.test.', client: '192.0.2.10' });
  });
});
