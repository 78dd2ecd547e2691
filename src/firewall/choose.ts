/**
 * Which backend filters the bridge, decided in one place. Pure: what the host looks like in,
 * a backend and the reason out, which the daemon logs at start.
 *
 * `auto` keeps the DOCKER-USER layout (iptables: `iptables -vL DOCKER-USER` shows one rule
 * per open address) wherever it is met: DOCKER-USER exists, FORWARD jumps to it, and IPv6,
 * if the bridge can carry it, has the same in ip6tables. Everywhere else it picks our own
 * nftables table, which filters whatever the other tables do: Docker 29's nftables
 * backend (no DOCKER-USER at all), a DOCKER-USER nothing jumps to (Docker's nftables backend
 * after a reboot, "iptables": false), a plain bridge without it, no ip6tables DOCKER-USER
 * (Docker 20.10's default) for a bridge that can carry IPv6. An explicit choice is obeyed;
 * the iptables backends then refuse to start where their rules would not be met (bypass.ts).
 */
import { CHAIN } from './rules.js';

export type Requested = 'auto' | 'iptables' | 'ipset' | 'nftables';
export type BackendName = Exclude<Requested, 'auto'>;

export interface HostFacts {
  /** What Docker says it programs (GET /info, Docker 29+); undefined when it does not say. */
  dockerFirewall?: string | undefined;
  /** `iptables -S`, or undefined when it cannot be read (iptables missing, no permission). */
  iptables?: readonly string[] | undefined;
  /** `ip6tables -S`, likewise. */
  ip6tables?: readonly string[] | undefined;
  /** Why IPv6 must be filtered on this bridge (filtered-bridge.ts), if it must. */
  ipv6Because?: string | undefined;
}

export function chooseBackend(requested: Requested, facts: HostFacts): { backend: BackendName; reason: string } {
  if (requested !== 'auto') return { backend: requested, reason: `--backend ${requested}` };
  const nftables = (reason: string) => ({ backend: 'nftables' as const, reason });
  if (facts.dockerFirewall === 'nftables') return nftables('Docker uses its nftables firewall backend, which has no DOCKER-USER');
  if (!facts.iptables) return nftables('iptables cannot be read here');
  if (!facts.iptables.includes(`-N ${CHAIN}`)) return nftables(`there is no ${CHAIN} chain`);
  if (!jumpsToDockerUser(facts.iptables)) return nftables(`${CHAIN} exists but FORWARD does not jump to it, so its rules are never met`);
  if (facts.ipv6Because) {
    if (!facts.ip6tables?.includes(`-N ${CHAIN}`)) return nftables(`IPv6 must be filtered (${facts.ipv6Because}) and ip6tables has no ${CHAIN} chain`);
    if (!jumpsToDockerUser(facts.ip6tables)) return nftables(`IPv6 must be filtered (${facts.ipv6Because}) and ip6tables FORWARD does not jump to ${CHAIN}`);
  }
  return { backend: 'iptables', reason: `${CHAIN} exists and FORWARD jumps to it` };
}

function jumpsToDockerUser(listing: readonly string[]): boolean {
  return listing.some((line) => line.startsWith('-A FORWARD ') && / -j DOCKER-USER$/.test(line.trim()));
}
