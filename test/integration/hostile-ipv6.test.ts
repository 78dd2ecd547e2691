/**
 * IPv6 from a hostile container (issue item 4), and forged source addresses on the way
 * out, with the real CLI and --interface in a lab whose bridge has a global IPv6 /64 and
 * an IPv6 "internet" behind the uplink (ipv6.ts):
 * - without an ip6tables DOCKER-USER chain, nothing can filter IPv6, so the daemon must
 *   refuse to start, in one line that says why and what to do;
 * - with it, the container reaches no internet IPv6 address over TCP, UDP or ICMPv6 until
 *   an AAAA answer opens one, and then only on the configured TCP ports;
 * - a packet from a source outside the network's subnets (IPv6 or IPv4) is dropped, even
 *   towards an address an answer opened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY } from '../lab/firewall-lab.js';
import { startFakeDns } from '../lab/fake-dns.js';
import { DROPS, forgeAddress, probe, ruleCounter, type Reach } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { INTERNET6, UDP_ECHO_PORT, addIpv6 } from '../lab/ipv6.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const UPSTREAM = { host: '127.0.0.1', port: 5300 };
const OPENED6 = INTERNET6[0];
const RECORDS = [...DEFAULT_RECORDS, { name: 'six', type: 'AAAA' as const, value: OPENED6 }];
const FORGED6 = '2001:db8:1::99';
const FORGED4 = '198.51.100.77';

describe.skipIf(!canUseNamespaces()).each(BACKENDS)(`IPv6 and forged sources from a hostile container, --backend $name${skipNote()}`, (backend) => {
  let hostile: HostileLab;
  const container = () => hostile.lab.containers[0]!;
  const host = () => hostile.lab.host;
  /** TCP, UDP and ICMPv6 from container 0 to `address`, each decided by the egress DROP's counter. */
  const everyProtocol = async (address: string): Promise<Record<string, Reach>> => {
    const dropped = () => DROPS.egress(host(), 6);
    return {
      tcp: await probe(container(), { protocol: 'tcp', address, port: 80 }, dropped),
      udp: await probe(container(), { protocol: 'udp', address, port: UDP_ECHO_PORT }, dropped),
      icmp: await probe(container(), { protocol: 'icmp', address }, dropped),
    };
  };

  beforeAll(async () => {
    const unavailable = await backend.unavailable();
    if (unavailable) throw new Error(unavailable);
    hostile = await createHostileLab();
    hostile.track(await addIpv6(hostile.lab, { dockerUser: false }));
    hostile.track(await startFakeDns(hostile.lab.host, { listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: RECORDS }));
  }, 60_000);

  printOnFailure(async () => `${firewallReport(await hostile.lab.rules(), hostile.daemon?.output())}\nip6tables:\n${await host().exec('ip6tables', ['-S'])}`);

  afterAll(async () => {
    await hostile?.close();
  });

  it('refuses to start when the bridge has a global IPv6 address and ip6tables has no DOCKER-USER chain', async () => {
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

  it('with the ip6tables DOCKER-USER chain, no IPv6 leaves over TCP, UDP or ICMPv6 until an AAAA answer opens one, and then only its TCP ports', async () => {
    await host().exec('ip6tables', ['-N', 'DOCKER-USER']);
    await host().exec('ip6tables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
    await host().exec('ip6tables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
    await hostile.start([...backend.args, '--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`, 'six.test.', 'allowed.test.']);

    expect(await everyProtocol(OPENED6)).toEqual({ tcp: 'dropped', udp: 'dropped', icmp: 'dropped' });
    expect(await hostile.lab.resolve('six.test', { type: 'AAAA' })).toEqual([OPENED6]);
    expect(await everyProtocol(OPENED6)).toEqual({ tcp: 'reached', udp: 'dropped', icmp: 'dropped' });
    expect(await probe(container(), { protocol: 'tcp', address: OPENED6, port: 443 })).toBe('reached');
    expect(await probe(container(), { protocol: 'tcp', address: INTERNET6[1], port: 80 }, () => DROPS.egress(host(), 6))).toBe('dropped');
  });

  it('drops a forged IPv6 source, even towards an address an answer opened', async () => {
    await forgeAddress(container(), FORGED6);
    await hostile.lab.internet.exec('ip6tables', ['-A', 'INPUT', '-s', FORGED6, '-m', 'comment', '--comment', 'probe forged', '-j', 'ACCEPT']);
    const reach = await probe(
      container(),
      { protocol: 'tcp', address: OPENED6, port: 80, source: FORGED6 },
      { dropped: () => DROPS.forged(host(), 6), arrived: () => ruleCounter(hostile.lab.internet, 6, 'INPUT', 'probe forged') },
    );
    expect(reach).toBe('dropped');
  });

  it('drops a forged IPv4 source, even towards an address an answer opened', async () => {
    expect(await hostile.lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await probe(container(), { protocol: 'tcp', address: '198.51.100.10', port: 80 })).toBe('reached');
    await forgeAddress(container(), FORGED4);
    await hostile.lab.internet.exec('iptables', ['-A', 'INPUT', '-s', FORGED4, '-m', 'comment', '--comment', 'probe forged', '-j', 'ACCEPT']);
    const reach = await probe(
      container(),
      { protocol: 'tcp', address: '198.51.100.10', port: 80, source: FORGED4 },
      { dropped: () => DROPS.forged(host(), 4), arrived: () => ruleCounter(hostile.lab.internet, 4, 'INPUT', 'probe forged') },
    );
    expect(reach).toBe('dropped');
  });
});
