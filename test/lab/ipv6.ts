/**
 * IPv6 for the firewall lab: a global /64 on the bridge and the containers, as Docker
 * gives a network created with --ipv6 (or as a host that puts one on its bridge), and an
 * IPv6 "internet" behind the uplink with TCP servers on 80 and 443 and a UDP echo service.
 * The host forwards IPv6. With `dockerUser`, ip6tables gets Docker's DOCKER-USER layout
 * (the chain, a RETURN, FORWARD jumping to it); without, ip6tables has none, as with
 * Docker 20.10 and "ip6tables": false.
 *
 *   containers 2001:db8:2::10, ::11 ─ bridge 2001:db8:2::1 [host] uplink 2001:db8:1::1 ─ internet 2001:db8:1::10, ::11
 */
import type { FirewallLab } from './firewall-lab.js';
import { startTcpServers } from './internet.js';
import { SCRIPTS } from './hostile.js';
import { startReady, type NsProcess } from './ns-process.js';

export const GATEWAY6 = '2001:db8:2::1';
export const SUBNET6 = '2001:db8:2::/64';
export const CONTAINERS6 = ['2001:db8:2::10', '2001:db8:2::11'] as const;
export const UPLINK6 = '2001:db8:1::1';
export const INTERNET6 = ['2001:db8:1::10', '2001:db8:1::11'] as const;
/** The internet's UDP echo service, on every INTERNET6 address. */
export const UDP_ECHO_PORT = 5000;

export interface Ipv6 {
  stop(): Promise<void>;
}

export async function addIpv6(lab: FirewallLab, options: { dockerUser: boolean }): Promise<Ipv6> {
  const { host, internet } = lab;
  await host.ip('addr', 'add', `${GATEWAY6}/64`, 'dev', lab.bridge, 'nodad');
  await host.ip('addr', 'add', `${UPLINK6}/64`, 'dev', 'uplink', 'nodad');
  await host.sysctl('net.ipv6.conf.all.forwarding', 1);
  for (const [i, container] of lab.containers.entries()) {
    await container.ip('addr', 'add', `${CONTAINERS6[i]}/64`, 'dev', 'eth0', 'nodad');
    await container.ip('-6', 'route', 'add', 'default', 'via', GATEWAY6);
  }
  for (const address of INTERNET6) await internet.ip('addr', 'add', `${address}/64`, 'dev', 'eth0', 'nodad');
  await internet.ip('-6', 'route', 'add', 'default', 'via', UPLINK6);
  if (options.dockerUser) {
    await host.exec('ip6tables', ['-N', 'DOCKER-USER']);
    await host.exec('ip6tables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
    await host.exec('ip6tables', ['-I', 'FORWARD', '-j', 'DOCKER-USER']);
  }
  const servers: Array<{ stop(): Promise<void> }> = [];
  try {
    const { child: tcp } = await startTcpServers(internet, INTERNET6.flatMap((address) => [80, 443].map((port) => `${address}:${port}`)));
    servers.push({
      stop: async () => {
        tcp.kill('SIGKILL');
        await tcp;
      },
    });
    const udp: NsProcess = await startReady(internet, SCRIPTS.udpService, ['--echo', ...INTERNET6.map((address) => `${address}:${UDP_ECHO_PORT}`)]);
    servers.push(udp);
  } catch (err) {
    for (const server of servers) await server.stop();
    throw err;
  }
  return {
    async stop() {
      for (const server of servers.splice(0)) await server.stop();
    },
  };
}
