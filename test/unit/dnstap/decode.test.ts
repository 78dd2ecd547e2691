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

  // Keys: Dnstap.type (15, varint) is 0x78, Dnstap.message (14, length-delimited) 0x72, Message.type (1, varint) 0x08.
  it.each([
    ['an empty frame', [], 'the required field Dnstap.type (15) is missing'],
    ['a Message without its type', [0x78, 0x01, 0x72, 0x00], 'the required field Message.type (1) is missing'],
    ['a Message longer than the frame', [0x78, 0x01, 0x72, 0x05, 0x08, 0x06], 'Dnstap.message (14) claims 5 bytes where 2 remain'],
    ['a Message sent as a varint', [0x78, 0x01, 0x70, 0x05], 'Dnstap.message (14) has wire type varint, not length-delimited'],
    ['a type sent as bytes', [0x7a, 0x01, 0x01], 'Dnstap.type (15) has wire type length-delimited, not varint'],
    ['a varint cut short', [0x78, 0x81], 'Dnstap.type (15) is cut short (a varint runs past the end at byte 2)'],
    ['a varint of 11 bytes', [0x78, ...Array(10).fill(0xff), 0x01], 'Dnstap.type (15) is a varint longer than 10 bytes (at byte 11)'],
    ['a length over 2^32', [0x78, 0x01, 0x72, 0xff, 0xff, 0xff, 0xff, 0x7f], 'Dnstap.message (14) claims more than 2^32 bytes where 0 remain'],
    ['field number 0', [0x00, 0x01], 'a field number 0 at byte 1'],
    ['a group', [0x78, 0x01, 0x13], 'field 2 has wire type group start, which dnstap never uses'],
    ['a fixed64 field cut short', [0x78, 0x01, 0x11, 0x01, 0x02], 'field 2 (8 bytes) is cut short: 2 remain'],
    ['a query address of 5 bytes', [0x78, 0x01, 0x72, 0x09, 0x08, 0x06, 0x22, 0x05, 1, 2, 3, 4, 5], 'socket address of 5 bytes is neither IPv4 (4) nor IPv6 (16)'],
  ])('throws a DecodeError that says why for %s', (_, bytes, why) => {
    expect(() => decodeDnstap(Buffer.from(bytes))).toThrow(new DecodeError(why.startsWith('socket') ? why : `not a dnstap protobuf message: ${why}`));
  });

  it('skips the fields it does not use, of every wire type, and merges a Message given twice (proto2)', () => {
    const frame = Buffer.from([
      0x78, 0x01, // Dnstap.type = MESSAGE
      0x12, 0x02, 0x76, 0x31, // version "v1"
      0x72, 0x04, 0x08, 0x05, 0x30, 0x35, // Message { type: CLIENT_QUERY, query_port: 53 }
      0x72, 0x12, // Message {
      0x08, 0x06, // type: CLIENT_RESPONSE
      0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // query_time_sec: 2^64 - 1
      0x4d, 0x01, 0x02, 0x03, 0x04, // query_time_nsec (fixed32) }
      0x0a, 0x01, 0x78, // identity "x"
    ]);
    expect(decodeDnstap(frame)).toEqual({ type: 6, identity: 'x', queryPort: 53 });
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
