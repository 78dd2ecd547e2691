import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('parseConfig', () => {
  it('has defaults a user can run with', () => {
    expect(parseConfig(['example.com.'], {})).toEqual({
      command: 'run',
      patterns: ['example.com.'],
      allowAll: false,
      listen: '/run/on-his-name/dnstap.sock',
      network: 'on-his-name',
      ports: [80, 443],
      allowCidrs: [],
      logLevel: 'info',
      logFormat: 'auto',
    });
  });

  it("reads the Go original's environment, and flags win over it", () => {
    const env = { LISTEN: '/tmp/env.sock', SOCKET_UID: '101', DOCKER_BRIDGE_NAME: 'envnet' };
    expect(parseConfig(['a.test'], env)).toMatchObject({ listen: '/tmp/env.sock', socketUid: 101, network: 'envnet' });
    expect(parseConfig(['--listen', '/tmp/flag.sock', '--socket-uid', '7', '--network', 'flagnet', 'a.test'], env)).toMatchObject({
      listen: '/tmp/flag.sock',
      socketUid: 7,
      network: 'flagnet',
    });
  });

  it('takes every option', () => {
    const config = parseConfig(
      ['--interface', 'br0', '--ports', '443, 8443,443', '--log-level', 'debug', '--log-format', 'json', '--allow-all', '--socket-gid', '5', '--listen', 'unix:///run/x.sock', '*'],
      {},
    );
    expect(config).toMatchObject({ interface: 'br0', ports: [443, 8443], logLevel: 'debug', logFormat: 'json', allowAll: true, socketGid: 5, listen: '/run/x.sock', patterns: ['*'] });
  });

  it('takes --allow-cidr repeated or comma-separated, and ALLOW_CIDR', () => {
    expect(parseConfig(['--allow-cidr', '10.0.0.0/8,192.168.1.0/24', '--allow-cidr', '127.0.0.1', 'a.test'], {}).allowCidrs).toEqual(['10.0.0.0/8', '192.168.1.0/24', '127.0.0.1']);
    expect(parseConfig(['a.test'], { ALLOW_CIDR: '10.0.0.0/8' }).allowCidrs).toEqual(['10.0.0.0/8']);
  });

  it('knows the reset, help and version commands', () => {
    expect(parseConfig(['reset'], {}).command).toBe('reset');
    expect(parseConfig(['--help'], {}).command).toBe('help');
    expect(parseConfig(['-V'], {}).command).toBe('version');
  });

  it.each([
    [['--bogus', 'a.test'], /--bogus.*on-his-name --help/],
    [['--ports', '80,http'], /--ports "80,http".*1 to 65535/],
    [['--ports', '0'], /--ports/],
    [['--ports', '70000'], /--ports/],
    [['--socket-uid', 'coredns'], /id -u/],
    [['--interface', 'br0;reboot'], /not a Linux interface name/],
    [['--interface', 'a-very-long-interface-name'], /at most 15/],
    [['--log-level', 'loud'], /--log-level "loud"/],
    [['--listen', 'localhost:4807'], /TCP address/],
    [['--listen', 'relative.sock'], /Unix socket path/],
    [['reset', 'a.test'], /takes no pattern/],
    [['--allow-cidr', '10.0.0.0/33', 'a.test'], /--allow-cidr "10.0.0.0\/33" is not an IPv4 or IPv6 range/],
    [['--allow-cidr', '2001:db8::/200', 'a.test'], /--allow-cidr "2001:db8::\/200" is not an IPv4 or IPv6 range/],
  ])('rejects %j with a clear ConfigError', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseConfig(['a.test'], { LISTEN: 'localhost:4807' })).toThrow(/^LISTEN=localhost:4807 is a TCP address/);
  });
});
