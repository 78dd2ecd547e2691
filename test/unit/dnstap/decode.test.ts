import { describe, expect, it } from 'vitest';
import { formatAddress } from '../../../src/dnstap/address.js';
import { decodeDnstap } from '../../../src/dnstap/decode.js';
import { DecodeError } from '../../../src/util/errors.js';
import { addressBytes, dnsResponse, dnstapFrame } from '../../support/dnstap.js';

describe('decodeDnstap', () => {
  it('decodes a CLIENT_RESPONSE into a plain object', () => {
    const response = dnsResponse('example.com', [{ type: 'A', name: 'example.com', ttl: 60, data: '198.51.100.7' }]);
    const message = decodeDnstap(dnstapFrame({ queryAddress: addressBytes('192.0.2.10'), queryPort: 41234, responseMessage: response, identity: 'coredns' }));
    expect(message).toEqual({ type: 6, identity: 'coredns', queryAddress: '192.0.2.10', queryPort: 41234, responseMessage: expect.anything() });
    expect(Buffer.from(message.responseMessage!)).toEqual(response);
  });

  it('leaves responseMessage out when the producer logs without "full"', () => {
    expect(decodeDnstap(dnstapFrame({ queryAddress: addressBytes('192.0.2.10') })).responseMessage).toBeUndefined();
  });

  it.each([
    ['random bytes', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])],
    ['a truncated message', dnstapFrame({ queryAddress: addressBytes('192.0.2.10') }).subarray(0, 7)],
    ['an empty frame', Buffer.alloc(0)],
  ])('throws a DecodeError for %s', (_, bytes) => {
    expect(() => decodeDnstap(bytes)).toThrow(DecodeError);
  });

  it('throws a DecodeError naming the problem when the frame has no Message', () => {
    expect(() => decodeDnstap(Buffer.from([0x78, 0x01]))).toThrow(/no Message/); // type=MESSAGE only
  });
});

describe('formatAddress', () => {
  it.each([
    ['192.0.2.10', '192.0.2.10'],
    ['::ffff:192.0.2.10', '192.0.2.10'], // CoreDNS sends IPv4-mapped addresses with family INET
    ['2001:db8::10', '2001:db8::10'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
  ])('formats %s as %s', (input, expected) => {
    expect(formatAddress(addressBytes(input))).toBe(expected);
  });

  it('refuses an address that is neither 4 nor 16 bytes', () => {
    expect(() => formatAddress(Buffer.alloc(5))).toThrow(/5 bytes/);
  });
});
