/**
 * Docker at the edge: resolve a network name to the bridge interface its containers
 * enter the host by, and the gateway they should use as --dns.
 */
import { ConfigError } from '../util/errors.js';
import { formatHostPort } from '../util/host-port.js';
import { DEFAULT_SOCKET } from './endpoint.js';

export interface BridgeNetwork {
  name: string;
  id: string;
  bridge: string;
  gateway?: string;
  subnet?: string;
  /** Created with --ipv6 (EnableIPv6): IPv6 egress must then be filtered too. */
  ipv6: boolean;
  /** Its IPv6 subnet from the IPAM config, when it names one. */
  subnet6?: string;
}

/** The slice of Docker's network API we use, so tests can pass a fake. */
export interface DockerNetworks {
  getNetwork(id: string): { inspect(): Promise<NetworkInspect> };
}

/** What we read of `docker network inspect`. */
export interface NetworkInspect {
  Id: string;
  Name: string;
  Driver?: string;
  EnableIPv6?: boolean;
  Options?: Record<string, string>;
  IPAM?: { Config?: Array<{ Gateway?: string; Subnet?: string }> };
}

/** Docker names a user-defined bridge `br-` + the first 12 characters of the network id unless told otherwise. */
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
const BRIDGE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;


export async function resolveBridgeNetwork(docker: DockerNetworks, name: string): Promise<BridgeNetwork> {
  let info: NetworkInspect;
  try {
    info = await docker.getNetwork(name).inspect();
  } catch (err) {
    throw explainDockerError(err, name);
  }
  if (info.Driver && info.Driver !== 'bridge') {
    throw new ConfigError(`Docker network "${name}" uses the ${info.Driver} driver; on-his-name needs a bridge network`);
  }
  const bridge = bridgeInterfaceName(info);
  // It goes into iptables-restore text: a Linux interface name and nothing else.
  if (!BRIDGE_NAME.test(bridge)) throw new ConfigError(`Docker network "${name}" has an unusable bridge name "${bridge}"`);
  const ipv4 = info.IPAM?.Config?.find((c) => c.Subnet && !c.Subnet.includes(':'));
  return {
    name: info.Name,
    id: info.Id,
    bridge,
    ...(ipv4?.Gateway ? { gateway: ipv4.Gateway } : {}),
    ...(ipv4?.Subnet ? { subnet: ipv4.Subnet } : {}),
    ipv6: info.EnableIPv6 === true,
    ...(ipv6Subnet(info) ? { subnet6: ipv6Subnet(info) } : {}),
  };
}

function ipv6Subnet(info: NetworkInspect): string | undefined {
  return info.EnableIPv6 ? info.IPAM?.Config?.find((c) => c.Subnet?.includes(':'))?.Subnet : undefined;
}

export function bridgeInterfaceName(info: Pick<NetworkInspect, 'Id' | 'Options'>): string {
  return info.Options?.[BRIDGE_NAME_OPTION] || `br-${info.Id.slice(0, 12)}`;
}

/**
 * Why resolveBridgeNetwork failed when waiting can help: the network does not exist (yet),
 * or Docker does not answer (not started, restarting). Undefined for anything else.
 */
export function waitableFailure(err: unknown): 'missing' | 'unreachable' | undefined {
  const cause = (err as { cause?: { statusCode?: number; code?: string } } | undefined)?.cause;
  if (cause?.statusCode === 404) return 'missing';
  if (cause?.code === 'ENOENT' || cause?.code === 'ECONNREFUSED' || cause?.code === 'ECONNRESET') return 'unreachable';
  return undefined;
}

function explainDockerError(err: unknown, name: string): ConfigError {
  const e = err as { statusCode?: number; code?: string; address?: string; port?: number; message?: string };
  if (e.statusCode === 404) {
    return new ConfigError(`Docker network "${name}" not found: create it with "docker network create ${name}"`, {
      cause: err,
    });
  }
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES') {
    // A Unix socket's error names its path; a TCP one its address and port apart.
    const where = e.address === undefined ? DEFAULT_SOCKET : e.port === undefined ? e.address : formatHostPort(e.address, e.port);
    return new ConfigError(
      `cannot reach Docker at ${where} (${e.code}): start dockerd, set DOCKER_HOST, or name the bridge with --interface`,
      { cause: err },
    );
  }
  return new ConfigError(`asking Docker for network "${name}" failed: ${e.message ?? String(err)}`, { cause: err });
}
