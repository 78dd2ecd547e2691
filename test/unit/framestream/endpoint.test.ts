import { describe, expect, it } from 'vitest';
import { formatEndpoint, isLoopbackHost, parseConnectEndpoint, parseListenEndpoint } from '../../../src/framestream/endpoint.js';

describe('Frame Streams endpoints', () => {
  it.each([
    ['unix:///run/on-his-name/dnstap.sock', { transport: 'unix', path: '/run/on-his-name/dnstap.sock' }],
    ['/tmp/x.sock', { transport: 'unix', path: '/tmp/x.sock' }],
    ['./x.sock', { transport: 'unix', path: './x.sock' }],
    ['tcp://127.0.0.1:6000', { transport: 'tcp', host: '127.0.0.1', port: 6000 }],
    ['tcp://:6000', { transport: 'tcp', host: '127.0.0.1', port: 6000 }],
    ['tcp://6000', { transport: 'tcp', host: '127.0.0.1', port: 6000 }],
    ['tcp://[::1]:6000', { transport: 'tcp', host: '::1', port: 6000 }],
    ['tcp://0.0.0.0:65535', { transport: 'tcp', host: '0.0.0.0', port: 65535 }],
  ])('listen %s', (value, endpoint) => {
    expect(parseListenEndpoint(value, '--listen')).toEqual(endpoint);
  });

  it('connects to host names, which listening does not accept', () => {
    expect(parseConnectEndpoint('tcp://coredns.internal:6000', '--connect')).toEqual({ transport: 'tcp', host: 'coredns.internal', port: 6000 });
    expect(() => parseListenEndpoint('tcp://coredns.internal:6000', '--listen')).toThrow(/IP address/);
  });

  it('formats back to the form the flags take', () => {
    for (const value of ['unix:///a/b.sock', 'tcp://127.0.0.1:6000', 'tcp://[::1]:6000', 'tcp://dns.test:53']) {
      expect(formatEndpoint(parseConnectEndpoint(value, '--connect'))).toBe(value);
    }
  });

  it('knows loopback from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', 'localhost']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.0.2.1', '128.0.0.1', '::ffff:128.0.0.1', 'example.test']) expect(isLoopbackHost(host), host).toBe(false);
  });
});
