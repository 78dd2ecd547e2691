/**
 * A hostile container goes for the host itself (issue item 5): services the host runs on
 * its gateway address, its uplink address and its IPv6 gateway, over TCP, UDP and ICMP.
 * None is reachable, from the container's own addresses or from an IPv6 link-local one
 * (which the source check lets pass, for neighbour discovery); DNS on the gateway still is; `--host-ports tcp/8080` opens exactly
 * TCP port 8080 on the host and nothing else. Each probe is decided by the counter of the
 * host chain's DROP or by the service answering (hostile.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY, UPLINK } from '../lab/firewall-lab.js';
import { startFakeDns } from '../lab/fake-dns.js';
import { SCRIPTS, forgeAddress, probe, type Family, type ProbeTarget, type Reach } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { startTcpServers } from '../lab/internet.js';
import { GATEWAY6, addIpv6 } from '../lab/ipv6.js';
import { startReady } from '../lab/ns-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const UPSTREAM = { host: '127.0.0.1', port: 5300 };
const HOST_ADDRESSES = [GATEWAY, UPLINK, GATEWAY6] as const;
/** A link-local source on the container's eth0. */
const LINK_LOCAL = 'fe80::98%eth0';
const fromLinkLocal: ProbeTarget[] = [
  { protocol: 'tcp', address: GATEWAY6, port: 8080, source: LINK_LOCAL },
  { protocol: 'udp', address: GATEWAY6, port: 8080, source: LINK_LOCAL },
];

describe.skipIf(!canUseNamespaces()).each(BACKENDS)(`a container reaching for the host, --backend $name${skipNote()}`, (backend) => {
  let hostile: HostileLab;
  const inline = ['--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`];
  const family = (address: string): Family => (address.includes(':') ? 6 : 4);
  /** Every target from container 0, each decided by the host chain's DROP counter of its family. */
  const reach = async (targets: readonly ProbeTarget[]) => {
    const outcome: Record<string, Reach> = {};
    for (const target of targets) {
      const key = `${target.protocol} ${target.address}${target.port ? ` ${target.port}` : ''}${target.source ? ` from ${target.source}` : ''}`;
      outcome[key] = await probe(hostile.lab.containers[0]!, target, () => backend.drops.host(hostile.lab.host, family(target.address)));
    }
    return outcome;
  };
  const everywhere = (make: (address: string) => ProbeTarget[]) => HOST_ADDRESSES.flatMap(make);

  beforeAll(async () => {
    const unavailable = await backend.unavailable();
    if (unavailable) throw new Error(unavailable);
    hostile = await createHostileLab({ hostFirewall: backend.hostFirewall });
    const { lab } = hostile;
    hostile.track(await addIpv6(lab, { dockerUser: !backend.ipv6Always }));
    hostile.track(await startFakeDns(lab.host, { listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: DEFAULT_RECORDS }));
    // The host's own services, where a container could reach them: TCP 8080 and 8081, UDP echo on 8080.
    const { child: tcp } = await startTcpServers(lab.host, [...HOST_ADDRESSES.map((a) => `${a}:8080`), `${GATEWAY}:8081`]);
    hostile.track({ stop: async () => void (tcp.kill('SIGKILL'), await tcp) });
    hostile.track(await startReady(lab.host, SCRIPTS.udpService, ['--echo', ...HOST_ADDRESSES.map((a) => `${a}:8080`)]));
    await forgeAddress(lab.containers[0]!, LINK_LOCAL.split('%')[0]!);
  }, 60_000);

  printOnFailure(async () => firewallReport((await backend.listing(hostile.lab.host)).split('\n'), hostile.daemon?.output(), backend.name));

  afterAll(async () => {
    await hostile?.close();
  });

  it('the lab works: before on-his-name, the container reaches every host service', async () => {
    const targets = [...everywhere((address) => [{ protocol: 'tcp', address, port: 8080 }]), ...fromLinkLocal];
    expect(Object.values(await reach(targets))).toEqual(targets.map(() => 'reached'));
  });

  it('reaches no host address over TCP, UDP or ICMP', async () => {
    await hostile.start([...backend.args, ...inline, 'allowed.test.']);
    const targets = everywhere((address) => [
      { protocol: 'tcp', address, port: 8080 },
      { protocol: 'udp', address, port: 8080 },
      { protocol: 'icmp', address },
    ]);
    const outcome = await reach([...targets, ...fromLinkLocal]);
    expect(outcome).toEqual(Object.fromEntries(Object.keys(outcome).map((key) => [key, 'dropped'])));
  });

  it('still answers DNS on the gateway, over UDP and TCP', async () => {
    expect(await hostile.lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect((await hostile.lab.containers[0]!.exec('dig', ['+short', '+tcp', '+time=10', '+tries=1', `@${GATEWAY}`, 'allowed.test'])).trim()).toBe('198.51.100.10');
  });

  it('--host-ports tcp/8080 opens TCP 8080 on the host, and nothing else', async () => {
    await hostile.start([...backend.args, ...inline, '--host-ports', 'tcp/8080', 'allowed.test.']);
    const outcome = await reach([
      ...everywhere((address) => [{ protocol: 'tcp', address, port: 8080 } as const]),
      { protocol: 'tcp', address: GATEWAY, port: 8081 },
      ...everywhere((address) => [{ protocol: 'udp', address, port: 8080 }, { protocol: 'icmp', address }] as const),
    ]);
    expect(outcome).toEqual({
      [`tcp ${GATEWAY} 8080`]: 'reached',
      [`tcp ${UPLINK} 8080`]: 'reached',
      [`tcp ${GATEWAY6} 8080`]: 'reached',
      [`tcp ${GATEWAY} 8081`]: 'dropped',
      [`udp ${GATEWAY} 8080`]: 'dropped',
      [`icmp ${GATEWAY}`]: 'dropped',
      [`udp ${UPLINK} 8080`]: 'dropped',
      [`icmp ${UPLINK}`]: 'dropped',
      [`udp ${GATEWAY6} 8080`]: 'dropped',
      [`icmp ${GATEWAY6}`]: 'dropped',
    });
  });
});
