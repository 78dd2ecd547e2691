import type { Layout } from '../../src/firewall/planner.js';

/**
 * A firewall layout as the daemon builds it, for tests: the network 192.0.2.0/24 (or
 * 2001:db8:1::/64 for IPv6) with its gateway asked for DNS on port 53, no host port open.
 */
export function testLayout(bridge = 'br0', tcpPorts: readonly number[] = [80, 443], family: 4 | 6 = 4, extra: Partial<Layout> = {}): Layout {
  const ports = tcpPorts.map((port) => ({ protocol: 'tcp' as const, port }));
  return family === 6
    ? { bridge, ports, family, subnets: ['2001:db8:1::/64'], dns: [{ address: '2001:db8:1::1', port: 53 }], hostPorts: [], ...extra }
    : { bridge, ports, subnets: ['192.0.2.0/24'], dns: [{ address: '192.0.2.1', port: 53 }], hostPorts: [], ...extra };
}
