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
      minTtl: 300,
      ttlGrace: 600,
      maxIps: 5_000,
      reconcileInterval: 15,
      logLevel: 'info',
      logFormat: 'auto',
      backend: 'iptables',
      waitForNetwork: false,
    });
  });

  it('takes --wait-for-network, or WAIT_FOR_NETWORK=1, and refuses a value it cannot read', () => {
    expect(parseConfig(['--wait-for-network', 'a.test'], {}).waitForNetwork).toBe(true);
    expect(parseConfig(['a.test'], { WAIT_FOR_NETWORK: '1' }).waitForNetwork).toBe(true);
    expect(parseConfig(['a.test'], { WAIT_FOR_NETWORK: '0' }).waitForNetwork).toBe(false);
    expect(() => parseConfig(['a.test'], { WAIT_FOR_NETWORK: 'sometimes' })).toThrow(/WAIT_FOR_NETWORK="sometimes" must be 1 or 0/);
  });

  it('takes the expiry, address limit and reconcile options from flags or the environment', () => {
    const env = { MIN_TTL: '60', TTL_GRACE: '0', MAX_IPS: '500', RECONCILE_INTERVAL: '0' };
    expect(parseConfig(['a.test'], env)).toMatchObject({ minTtl: 60, ttlGrace: 0, maxIps: 500, reconcileInterval: 0 });
    expect(parseConfig(['--min-ttl', '3600', '--ttl-grace', '120', '--max-ips', '7', '--reconcile-interval', '30', 'a.test'], env)).toMatchObject({
      minTtl: 3600,
      ttlGrace: 120,
      maxIps: 7,
      reconcileInterval: 30,
    });
  });

  it('takes --backend ipset, or BACKEND from the environment, and the flag wins', () => {
    expect(parseConfig(['--backend', 'ipset', 'a.test'], {}).backend).toBe('ipset');
    expect(parseConfig(['a.test'], { BACKEND: 'ipset' }).backend).toBe('ipset');
    expect(parseConfig(['--backend', 'iptables', 'a.test'], { BACKEND: 'ipset' }).backend).toBe('iptables');
    const fifteen = Array.from({ length: 15 }, (_, i) => 8000 + i).join(',');
    expect(parseConfig(['--backend', 'ipset', '--ports', fifteen, 'a.test'], {}).ports).toHaveLength(15);
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
    [['--backend', 'nft', 'a.test'], /--backend "nft" is not one of iptables, ipset/],
    [['--backend', 'ipset', '--ports', Array.from({ length: 16 }, (_, i) => 8000 + i).join(','), 'a.test'], /at most 15 ports \(got 16\).*--backend iptables/],
    [['--allow-cidr', '10.0.0.0/33', 'a.test'], /--allow-cidr "10.0.0.0\/33" is not an IPv4 or IPv6 range/],
    [['--allow-cidr', '2001:db8::/200', 'a.test'], /--allow-cidr "2001:db8::\/200" is not an IPv4 or IPv6 range/],
    [['--min-ttl', '0', 'a.test'], /--min-ttl "0" must be a whole number from 1 to 604800 \(seconds\)/],
    [['--min-ttl', '5m', 'a.test'], /--min-ttl "5m" must be a whole number/],
    [['--ttl-grace=-1', 'a.test'], /--ttl-grace "-1" must be a whole number from 0/],
    [['--max-ips', '0', 'a.test'], /--max-ips "0" must be a whole number from 1 to 1000000 \(addresses\)/],
    [['--reconcile-interval', '1.5', 'a.test'], /--reconcile-interval "1.5".*0 turns it off/],
  ])('rejects %j with a clear ConfigError', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseConfig(['a.test'], { LISTEN: 'localhost:4807' })).toThrow(/^LISTEN=localhost:4807 is a TCP address/);
    expect(() => parseConfig(['a.test'], { MAX_IPS: 'lots' })).toThrow(/^MAX_IPS "lots" must be a whole number/);
  });
});
