import { describe, expect, it } from 'vitest';
import { formatHostPort, isLoopbackHost, portNumber, splitHostPort } from '../../../src/util/host-port.js';

describe('splitHostPort', () => {
  it.each([
    ['192.0.2.1:53', { host: '192.0.2.1', port: '53' }],
    ['192.0.2.1', { host: '192.0.2.1', port: undefined }],
    [':9090', { host: '', port: '9090' }],
    ['[2001:db8::1]:53', { host: '2001:db8::1', port: '53' }],
    ['[::1]', { host: '::1', port: undefined }],
    ['2001:db8::1', { host: '2001:db8::1', port: undefined }],
    ['name.test:80', { host: 'name.test', port: '80' }],
  ])('splits %s', (text, parts) => {
    expect(splitHostPort(text)).toEqual(parts);
  });

  it.each(['1:2:3', 'a.test:', 'tcp://1.2.3.4:5', '[::1]:x', '[::1'])('refuses %s', (text) => {
    expect(splitHostPort(text)).toBeUndefined();
  });

  it('reads ports from 1 to 65535 only', () => {
    expect([portNumber('1'), portNumber('65535'), portNumber('0'), portNumber('65536'), portNumber('08'), portNumber('-1')]).toEqual([1, 65535, undefined, undefined, 8, undefined]);
  });

  it('knows IPv4-mapped loopback as loopback', () => {
    expect([isLoopbackHost('::ffff:127.0.0.1'), isLoopbackHost('::FFFF:127.9.9.9'), isLoopbackHost('::ffff:10.0.0.1')]).toEqual([true, true, false]);
  });

  it('formats HOST:PORT back, an IPv6 host in brackets, so that splitHostPort reads it again', () => {
    expect(formatHostPort('192.0.2.1', 53)).toBe('192.0.2.1:53');
    expect(formatHostPort('2001:db8::1', 53)).toBe('[2001:db8::1]:53');
    expect(splitHostPort(formatHostPort('2001:db8::1', 53))).toEqual({ host: '2001:db8::1', port: '53' });
  });
});
