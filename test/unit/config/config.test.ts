import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

describe('parseConfig', () => {
  it('takes audit mode and the blocked view interval from flags or the environment', () => {
    expect(parseConfig(['--audit', 'a.test'], {}).audit).toBe(true);
    expect(parseConfig(['a.test'], { AUDIT: '1' }).audit).toBe(true);
    expect(parseConfig(['--blocked-interval', '0', 'a.test'], {}).blockedInterval).toBe(0);
    expect(parseConfig(['a.test'], { BLOCKED_INTERVAL: '30' }).blockedInterval).toBe(30);
    expect(() => parseConfig(['--blocked-interval', 'soon', 'a.test'], {})).toThrow(/--blocked-interval/);
  });

  it('reads suggest as a command of the admin API, like status', () => {
    expect(parseConfig(['suggest', '--admin-listen', '9090'], {})).toMatchObject({ command: 'suggest', adminListen: { host: '127.0.0.1', port: 9090 } });
    expect(() => parseConfig(['suggest'], {})).toThrow(/suggest reads the admin API, and no address was given/);
    expect(() => parseConfig(['suggest', 'a.test', '--admin-listen', '9090'], {})).toThrow(/"suggest" takes no pattern/);
  });

  it('has defaults a user can run with', () => {
    expect(parseConfig(['example.com.'], {})).toEqual({
      command: 'run',
      patterns: ['example.com.'],
      allowAll: false,
      listen: { transport: 'unix', path: '/run/on-his-name/dnstap.sock' },
      connect: [],
      network: 'on-his-name',
      ports: [{ protocol: 'tcp', port: 80 }, { protocol: 'tcp', port: 443 }],
      allowCidrs: [],
      minTtl: 300,
      ttlGrace: 600,
      maxIps: 5_000,
      maxIpsPerName: 1_000,
      hostPorts: [],
      reconcileInterval: 15,
      logLevel: 'info',
      logFormat: 'auto',
      backend: 'auto',
      waitForNetwork: false,
      audit: false,
      blockedInterval: 5,
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
    expect(parseConfig(['a.test'], env)).toMatchObject({ listen: { transport: 'unix', path: '/tmp/env.sock' }, socketUid: 101, network: 'envnet' });
    expect(parseConfig(['--listen', '/tmp/flag.sock', '--socket-uid', '7', '--network', 'flagnet', 'a.test'], env)).toMatchObject({
      listen: { transport: 'unix', path: '/tmp/flag.sock' },
      socketUid: 7,
      network: 'flagnet',
    });
  });

  it('takes every option', () => {
    const config = parseConfig(
      ['--interface', 'br0', '--ports', '443, 8443,443', '--log-level', 'debug', '--log-format', 'json', '--allow-all', '--socket-gid', '5', '--listen', 'unix:///run/x.sock', '*'],
      {},
    );
    expect(config).toMatchObject({ interface: 'br0', ports: [{ protocol: 'tcp', port: 443 }, { protocol: 'tcp', port: 8443 }], logLevel: 'debug', logFormat: 'json', allowAll: true, socketGid: 5, listen: { transport: 'unix', path: '/run/x.sock' }, patterns: ['*'] });
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
    [['--ports', '80,http'], /--ports "http" is not a port from 1 to 65535, optionally with its protocol: 443, tcp\/443, udp\/443/],
    [['--ports', 'sctp/80'], /--ports "sctp\/80" is not a port/],
    [['--ports', '0'], /--ports/],
    [['--ports', '70000'], /--ports/],
    [['--socket-uid', 'coredns'], /id -u/],
    [['--interface', 'br0;reboot'], /not a Linux interface name/],
    [['--interface', 'a-very-long-interface-name'], /at most 15/],
    [['--log-level', 'loud'], /--log-level "loud"/],
    [['--listen', 'localhost:4807'], /TCP address/],
    [['--listen', 'relative.sock'], /Unix socket path/],
    [['reset', 'a.test'], /takes no pattern/],
    [['--backend', 'nft', 'a.test'], /--backend "nft" is not one of auto, iptables, ipset, nftables/],
    [['--backend', 'ipset', '--ports', Array.from({ length: 16 }, (_, i) => 8000 + i).join(','), 'a.test'], /at most 15 tcp ports \(got 16\).*another backend/],
    [['--allow-cidr', '10.0.0.0/33', 'a.test'], /--allow-cidr "10.0.0.0\/33" is not an IPv4 or IPv6 range/],
    [['--allow-cidr', '2001:db8::/200', 'a.test'], /--allow-cidr "2001:db8::\/200" is not an IPv4 or IPv6 range/],
    [['--min-ttl', '0', 'a.test'], /--min-ttl "0" must be a whole number from 1 to 604800 \(seconds\)/],
    [['--min-ttl', '5m', 'a.test'], /--min-ttl "5m" must be a whole number/],
    [['--ttl-grace=-1', 'a.test'], /--ttl-grace "-1" must be a whole number from 0/],
    [['--max-ips', '0', 'a.test'], /--max-ips "0" must be a whole number from 1 to 1000000 \(addresses\)/],
    [['--reconcile-interval', '1.5', 'a.test'], /--reconcile-interval "1.5".*0 turns it off/],
    [['--dns-listen', '192.0.2.1', 'a.test'], /--dns-listen needs --dns-upstream ADDRESS:PORT/],
    [['--dns-upstream', '127.0.0.1:5300', 'a.test'], /--dns-upstream needs inline mode: add --dns-listen/],
    [['--deny-nxdomain', 'a.test'], /--deny-nxdomain needs inline mode/],
    [['--dns-listen', 'localhost:53', '--dns-upstream', '127.0.0.1', 'a.test'], /--dns-listen "localhost:53" must be an IP address/],
    [['--dns-listen', '192.0.2.1:99999', '--dns-upstream', '127.0.0.1', 'a.test'], /--dns-listen: port "99999" must be a number from 1 to 65535/],
    [['--dns-listen', 'gateway', '--dns-upstream', '127.0.0.1', '--dns-hold-ms', '20000', 'a.test'], /--dns-hold-ms "20000" must be a whole number from 0 to 10000/],
    [['--admin-listen', 'nine', 'a.test'], /--admin-listen "nine" must be PORT, :PORT, HOST:PORT or \[IPv6\]:PORT, e.g. 9090/],
    [['--admin-listen', '0', 'a.test'], /--admin-listen "0": the port must be from 1 to 65535/],
    [['--admin-listen', '70000', 'a.test'], /the port must be from 1 to 65535/],
    [['--admin-listen', 'admin.example:9090', 'a.test'], /"admin.example" is not an IPv4 address; give an IP address, not a name/],
    [['--admin-listen', '[127.0.0.1]:9090', 'a.test'], /"127.0.0.1" is not an IPv6 address/],
    [['--admin-listen', '::1:9090', 'a.test'], /must be PORT, :PORT, HOST:PORT or \[IPv6\]:PORT/],
    [['--admin-listen', 'http://127.0.0.1:9090', 'a.test'], /must be PORT/],
    [['status', 'a.test', '--admin-listen', '9090'], /"status" takes no pattern/],
    [['status'], /start the daemon with --admin-listen ADDR.*on-his-name status --admin-listen ADDR.*ADMIN_LISTEN/],
  ])('rejects %j with a clear ConfigError', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('turns inline DNS mode on with --dns-listen, from flags or the environment', () => {
    expect(parseConfig(['--dns-listen', '192.0.2.1', '--dns-upstream', '127.0.0.1:5300', 'a.test'], {}).dns).toEqual({
      listen: { host: '192.0.2.1', port: 53 },
      upstream: { host: '127.0.0.1', port: 5300 },
      holdMs: 200,
      upstreamTimeoutMs: 2000,
      denyNxdomain: false,
    });
    const env = { DNS_LISTEN: 'gateway:5353', DNS_UPSTREAM: '[2001:db8::53]:53', DNS_HOLD_MS: '50', DNS_TIMEOUT_MS: '500', DENY_NXDOMAIN: '1' };
    expect(parseConfig(['a.test'], env).dns).toEqual({
      listen: { host: 'gateway', port: 5353 },
      upstream: { host: '2001:db8::53', port: 53 },
      holdMs: 50,
      upstreamTimeoutMs: 500,
      denyNxdomain: true,
    });
    expect(parseConfig(['--dns-listen', '::1', '--dns-upstream', '::1', 'a.test'], {}).dns?.listen).toEqual({ host: '::1', port: 53 });
    expect(parseConfig(['a.test'], {}).dns).toBeUndefined();
  });

  it.each([
    ['9090', { host: '127.0.0.1', port: 9090, loopback: true }],
    [':9090', { host: '127.0.0.1', port: 9090, loopback: true }],
    ['127.0.0.2:1', { host: '127.0.0.2', port: 1, loopback: true }],
    ['localhost:65535', { host: '127.0.0.1', port: 65535, loopback: true }],
    ['[::1]:9090', { host: '::1', port: 9090, loopback: true }],
    ['0.0.0.0:9090', { host: '0.0.0.0', port: 9090, loopback: false }],
    ['192.0.2.1:9090', { host: '192.0.2.1', port: 9090, loopback: false }],
    ['[::]:9090', { host: '::', port: 9090, loopback: false }],
    ['[2001:db8::1]:9090', { host: '2001:db8::1', port: 9090, loopback: false }],
  ])('reads --admin-listen %s', (value, expected) => {
    expect(parseConfig(['--admin-listen', value, 'a.test'], {}).adminListen).toEqual(expected);
  });

  it('listens for the admin API only when asked, from the flag or ADMIN_LISTEN, and the flag wins', () => {
    expect(parseConfig(['a.test'], {}).adminListen).toBeUndefined();
    expect(parseConfig(['a.test'], { ADMIN_LISTEN: '' }).adminListen).toBeUndefined();
    expect(parseConfig(['a.test'], { ADMIN_LISTEN: '9100' }).adminListen).toEqual({ host: '127.0.0.1', port: 9100, loopback: true });
    expect(parseConfig(['--admin-listen', '9200', 'a.test'], { ADMIN_LISTEN: '9100' }).adminListen?.port).toBe(9200);
    expect(() => parseConfig(['a.test'], { ADMIN_LISTEN: 'x' })).toThrow(/^ADMIN_LISTEN "x" must be/);
  });

  it('knows the status command, which needs the admin address', () => {
    expect(parseConfig(['status', '--admin-listen', '9090'], {})).toMatchObject({ command: 'status', patterns: [], adminListen: { port: 9090 } });
    expect(parseConfig(['status'], { ADMIN_LISTEN: '[::1]:9091' })).toMatchObject({ command: 'status', adminListen: { host: '::1', port: 9091 } });
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseConfig(['a.test'], { LISTEN: 'localhost:4807' })).toThrow(/^LISTEN=localhost:4807 is a TCP address/);
    expect(() => parseConfig(['a.test'], { MAX_IPS: 'lots' })).toThrow(/^MAX_IPS "lots" must be a whole number/);
  });
});

describe('parseConfig: where dnstap comes from (--listen, --connect)', () => {
  const unix = (path: string) => ({ transport: 'unix', path });
  const tcp = (host: string, port: number) => ({ transport: 'tcp', host, port });

  it('listens on TCP, on loopback unless an address is given', () => {
    expect(parseConfig(['--listen', 'tcp://127.0.0.1:6000', 'a.test'], {}).listen).toEqual(tcp('127.0.0.1', 6000));
    expect(parseConfig(['--listen', 'tcp://:6000', 'a.test'], {}).listen).toEqual(tcp('127.0.0.1', 6000));
    expect(parseConfig(['--listen', 'tcp://6000', 'a.test'], {}).listen).toEqual(tcp('127.0.0.1', 6000));
    expect(parseConfig(['--listen', 'tcp://[::1]:6000', 'a.test'], {}).listen).toEqual(tcp('::1', 6000));
    expect(parseConfig(['--listen', 'tcp://192.0.2.1:6000', 'a.test'], {}).listen).toEqual(tcp('192.0.2.1', 6000));
    expect(parseConfig(['a.test'], { LISTEN: 'tcp://:7000' }).listen).toEqual(tcp('127.0.0.1', 7000));
  });

  it('dials listening producers: --connect repeatable, CONNECT comma-separated, and the flag wins', () => {
    const config = parseConfig(['--connect', 'unix:///run/coredns/dnstap.sock', '--connect', 'tcp://[::1]:6001', 'a.test'], { CONNECT: 'tcp://127.0.0.1:1' });
    expect(config.connect).toEqual([unix('/run/coredns/dnstap.sock'), tcp('::1', 6001)]);
    expect(parseConfig(['a.test'], { CONNECT: 'unix:///a.sock, tcp://dns.internal:6000' }).connect).toEqual([unix('/a.sock'), tcp('dns.internal', 6000)]);
    expect(parseConfig(['--connect', '/a.sock,unix:///a.sock', 'a.test'], {}).connect).toEqual([unix('/a.sock')]);
  });

  it('does not listen when only --connect is given, and does both when both are given', () => {
    expect(parseConfig(['--connect', '/run/coredns/dnstap.sock', 'a.test'], {})).not.toHaveProperty('listen');
    expect(parseConfig(['--connect', '/c.sock', '--listen', '/l.sock', 'a.test'], {})).toMatchObject({ listen: unix('/l.sock'), connect: [unix('/c.sock')] });
    expect(parseConfig(['--connect', '/c.sock', 'a.test'], { LISTEN: '/l.sock' }).listen).toEqual(unix('/l.sock'));
  });

  it.each([
    [['--listen', 'tcp://localhost:6000'], /--listen "tcp:\/\/localhost:6000" must name an IP address.*tcp:\/\/127\.0\.0\.1:6000/],
    [['--listen', 'tcp://127.0.0.1'], /not tcp:\/\/HOST:PORT/],
    [['--listen', 'tcp://::1:6000'], /IPv6 address goes in brackets/],
    [['--listen', 'tcp://127.0.0.1:0'], /port 0: a TCP port is 1 to 65535/],
    [['--listen', 'tcp://127.0.0.1:70000'], /port 70000/],
    [['--connect', 'tcp://:6000'], /--connect "tcp:\/\/:6000" names no host to connect to/],
    [['--connect', 'coredns:6000'], /--connect=coredns:6000 is a TCP address without its scheme: write tcp:\/\/HOST:PORT/],
    [['--connect', 'dnstap.sock'], /--connect "dnstap.sock" must be a Unix socket path starting with "\/".*or tcp:\/\/HOST:PORT/],
    [['--listen', 'tcp://127.0.0.1:6000', '--socket-uid', '101'], /--socket-uid.*Unix socket.*\(TCP\): drop them/],
    [['--connect', '/c.sock', '--socket-gid', '101'], /\(--connect alone\): drop them/],
    [['--connect', 'unix:///run/x.sock', '--listen', '/run/x.sock'], /--connect unix:\/\/\/run\/x\.sock is where on-his-name itself listens/],
  ])('rejects %j with a ConfigError naming the fix', (argv, message) => {
    expect(() => parseConfig([...argv, 'a.test'], {})).toThrow(ConfigError);
    expect(() => parseConfig([...argv, 'a.test'], {})).toThrow(message);
  });

  it('names CONNECT when the bad value came from the environment', () => {
    expect(() => parseConfig(['a.test'], { CONNECT: 'tcp://:1' })).toThrow(/^CONNECT "tcp:\/\/:1" names no host/);
  });
});

describe('a pattern that reads like a mistyped command', () => {
  it.each([
    ['rset', /"rset" is not a command \(did you mean "reset"\?\): to allow that top-level name, write it with its trailing dot \("rset\."\)/],
    ['stauts', /"stauts" is not a command \(did you mean "status"\?\)/],
    ['localhost', /"localhost" is one label without a dot: .*"localhost\."/],
  ])('refuses %s, naming the fix, instead of allowing it and closing everything else', (word, message) => {
    expect(() => parseConfig([word], {})).toThrow(message);
    expect(() => parseConfig(['example.com.', word], {})).toThrow(ConfigError);
  });

  it('still allows a top-level name written with its dot, and any name with a dot', () => {
    expect(parseConfig(['rset.', 'example.com'], {}).patterns).toEqual(['rset.', 'example.com']);
  });
});
