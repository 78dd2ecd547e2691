/**
 * IPv6 from a hostile container (issue item 4), and forged source addresses on the way
 * out, with the real CLI and --interface in a lab whose bridge has a global IPv6 /64 and
 * an IPv6 "internet" behind the uplink (ipv6.ts):
 * - without an ip6tables DOCKER-USER chain, the iptables backends cannot filter IPv6, so
 *   the daemon must refuse to start, in one line that says why and what to do; the
 *   nftables backend filters IPv6 in its own table and starts;
 * - with that chain (or with nftables), the container reaches no internet IPv6 address
 *   over TCP, UDP or ICMPv6 until an AAAA answer opens one, and then only on the
 *   configured TCP ports;
 * - a packet from a source outside the network's subnets (IPv6 or IPv4, IPv4 link-local
 *   included) is dropped, even towards an address an answer opened; an IPv6 link-local
 *   source passes the source check (neighbour discovery needs it) and the kernel never
 *   forwards it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY } from '../lab/firewall-lab.js';
import { startFakeDns } from '../lab/fake-dns.js';
import { forgeAddress, ip6Statistic, probe, ruleCounter, type Reach } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { INTERNET6, UDP_ECHO_PORT, addIpv6 } from '../lab/ipv6.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const UPSTREAM = { host: '127.0.0.1', port: 5300 };
const OPENED6 = INTERNET6[0];
const RECORDS = [...DEFAULT_RECORDS, { name: 'six', type: 'AAAA' as const, value: OPENED6 }];
const FORGED6 = '2001:db8:1::99';
/** Forged IPv4 sources: an internet address, and a link-local one (169.254/16, which no router forwards but a host might). */
const FORGED4 = ['198.51.100.77', '169.254.0.99'] as const;
const LINK_LOCAL6 = 'fe80::99';

describe.skipIf(!canUseNamespaces()).each(BACKENDS)(`IPv6 and forged sources from a hostile container, --backend $name${skipNote()}`, (backend) => {
  let hostile: HostileLab;
  const container = () => hostile.lab.containers[0]!;
  const host = () => hostile.lab.host;
  /** TCP, UDP and ICMPv6 from container 0 to `address`, each decided by the egress DROP's counter. */
  const everyProtocol = async (address: string): Promise<Record<string, Reach>> => {
    const dropped = () => backend.drops.egress(host(), 6);
    return {
      tcp: await probe(container(), { protocol: 'tcp', address, port: 80 }, dropped),
      udp: await probe(container(), { protocol: 'udp', address, port: UDP_ECHO_PORT }, dropped),
      icmp: await probe(container(), { protocol: 'icmp', address }, dropped),
    };
  };

  beforeAll(async () => {
    const unavailable = await backend.unavailable();
    if (unavailable) throw new Error(unavailable);
    hostile = await createHostileLab({ hostFirewall: backend.hostFirewall });
    hostile.track(await addIpv6(hostile.lab, { dockerUser: false }));
    hostile.track(await startFakeDns(hostile.lab.host, { listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: RECORDS }));
  }, 60_000);

  printOnFailure(async () => firewallReport((await backend.listing(host())).split('\n'), hostile.daemon?.output(), backend.name));

  afterAll(async () => {
    await hostile?.close();
  });

  // Only a backend that needs ip6tables' DOCKER-USER can lack it (nftables filters IPv6 in its own table: the test after this one).
  if (!backend.ipv6Always) it('refuses to start when the bridge has a global IPv6 address and ip6tables has no DOCKER-USER chain', async () => {
    const outcome = await hostile.startOrExit([...backend.args, 'six.test.']);
    if ('running' in outcome) {
      const reached = await everyProtocol(OPENED6);
      await hostile.stopDaemon();
      expect.fail(`it started, and IPv6 left the bridge unfiltered: the container reached ${OPENED6} over ${JSON.stringify(reached)}`);
    }
    expect(outcome.exitCode).toBe(2);
    expect(outcome.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^on-his-name: IPv6 can leave the bridge \(bridge ohnbr0 has the IPv6 address 2001:db8:2::1\) but ip6tables filtering cannot be installed \(.*DOCKER-USER.*\): .*"ip6tables": true/,
      ),
    ]);
  });

  if (backend.ipv6Always) it('starts although ip6tables has no DOCKER-USER chain, and no IPv6 leaves over TCP, UDP or ICMPv6', async () => {
    expect(await host().exec('ip6tables', ['-S'])).not.toContain('DOCKER-USER');
    await hostile.start([...backend.args, 'six.test.']);
    expect(await everyProtocol(OPENED6)).toEqual({ tcp: 'dropped', udp: 'dropped', icmp: 'dropped' });
  });

  it(`${backend.ipv6Always ? 'in its own table' : 'with the ip6tables DOCKER-USER chain'}, no IPv6 leaves over TCP, UDP or ICMPv6 until an AAAA answer opens one, and then only its TCP ports`, async () => {
    if (!backend.ipv6Always) {
      await host().exec('ip6tables', ['-N', 'DOCKER-USER']);
      await host().exec('ip6tables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
      await host().exec('ip6tables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    }
    await hostile.start([...backend.args, '--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`, 'six.test.', 'allowed.test.']);

    expect(await everyProtocol(OPENED6)).toEqual({ tcp: 'dropped', udp: 'dropped', icmp: 'dropped' });
    expect(await hostile.lab.resolve('six.test', { type: 'AAAA' })).toEqual([OPENED6]);
    expect(await everyProtocol(OPENED6)).toEqual({ tcp: 'reached', udp: 'dropped', icmp: 'dropped' });
    expect(await probe(container(), { protocol: 'tcp', address: OPENED6, port: 443 })).toBe('reached');
    expect(await probe(container(), { protocol: 'tcp', address: INTERNET6[1], port: 80 }, () => backend.drops.egress(host(), 6))).toBe('dropped');
  });

  it('drops a forged IPv6 source, even towards an address an answer opened', async () => {
    await forgeAddress(container(), FORGED6);
    await hostile.lab.internet.exec('ip6tables', ['-A', 'INPUT', '-s', FORGED6, '-m', 'comment', '--comment', 'probe forged', '-j', 'ACCEPT']);
    const reach = await probe(
      container(),
      { protocol: 'tcp', address: OPENED6, port: 80, source: FORGED6 },
      { dropped: () => backend.drops.forged(host(), 6), arrived: () => ruleCounter(hostile.lab.internet, 6, 'INPUT', 'probe forged') },
    );
    expect(reach).toBe('dropped');
  });

  it('never forwards a link-local IPv6 source: the source check lets it pass (for neighbour discovery), the kernel refuses to forward it', async () => {
    await forgeAddress(container(), LINK_LOCAL6);
    await hostile.lab.internet.exec('ip6tables', ['-A', 'INPUT', '-s', LINK_LOCAL6, '-m', 'comment', '--comment', 'probe forged', '-j', 'ACCEPT']);
    const reach = await probe(
      container(),
      { protocol: 'tcp', address: OPENED6, port: 80, source: `${LINK_LOCAL6}%eth0` },
      { dropped: () => ip6Statistic(host(), 'Ip6InAddrErrors'), arrived: () => ruleCounter(hostile.lab.internet, 6, 'INPUT', 'probe forged') },
    );
    expect(reach).toBe('dropped');
  });

  it.each(FORGED4)('drops a forged IPv4 source (%s), even towards an address an answer opened', async (forged) => {
    expect(await hostile.lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await probe(container(), { protocol: 'tcp', address: '198.51.100.10', port: 80 })).toBe('reached');
    await forgeAddress(container(), forged);
    await hostile.lab.internet.exec('iptables', ['-A', 'INPUT', '-s', forged, '-m', 'comment', '--comment', 'probe forged', '-j', 'ACCEPT']);
    const reach = await probe(
      container(),
      { protocol: 'tcp', address: '198.51.100.10', port: 80, source: forged },
      { dropped: () => backend.drops.forged(host(), 4), arrived: () => ruleCounter(hostile.lab.internet, 4, 'INPUT', 'probe forged') },
    );
    expect(reach).toBe('dropped');
  });
});
