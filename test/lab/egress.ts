/**
 * Is an address closed to a container? Decided by what the kernel did, not by a connect that
 * timed out: on a loaded machine a connect can time out through an open rule, and a test
 * that took that for "closed" would pass without checking anything. egress() is "reached"
 * once the connection is established and "dropped" once the DOCKER-USER default-drop
 * counter moved while it was unanswered (hostile.ts' probe); "unanswered" means neither
 * happened, and no test should take it for either.
 */
import type { FirewallLab } from './firewall-lab.js';
import { DROPS, probe, type Reach } from './hostile.js';

export function egress(lab: FirewallLab, address: string, port: number, options: { from?: number; timeoutMs?: number } = {}): Promise<Reach> {
  const from = lab.containers[options.from ?? 0];
  if (!from) throw new Error(`the lab has no container ${options.from}`);
  return probe(from, { protocol: 'tcp', address, port }, () => DROPS.egress(lab.host, 4), options.timeoutMs ?? 10_000);
}
