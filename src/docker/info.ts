/**
 * `GET /info` (`docker info`): what we read of the daemon as a whole. Docker 29 and later
 * say there which firewall backend dockerd programs (iptables, nftables,
 * iptables+firewalld), which decides where our rules must go; older Docker says nothing
 * and always uses iptables.
 */

export interface DockerInfo {
  ServerVersion?: string;
  /** Docker 29+. */
  FirewallBackend?: { Driver?: string; Info?: Array<[string, string]> | null } | null;
}

/** The slice of Docker's system API we use, so tests can pass a fake. */
export interface DockerSystem {
  info(): Promise<DockerInfo>;
}

/** The firewall backend dockerd says it uses; undefined when it does not say (Docker before 29: iptables). */
export function firewallBackendDriver(info: DockerInfo): string | undefined {
  return info.FirewallBackend?.Driver || undefined;
}
