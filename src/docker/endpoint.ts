/**
 * Where Docker's API is, from the environment the docker CLI reads: DOCKER_HOST
 * (unix:///PATH or tcp://HOST[:PORT]), DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. Pure:
 * the environment in, an endpoint out; client.ts opens the connections.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../util/errors.js';
import { portNumber, splitHostPort } from '../util/host-port.js';

export type DockerEndpoint =
  | { transport: 'unix'; path: string }
  | {
      transport: 'tcp';
      host: string;
      port: number;
      /** TLS that checks the daemon against DOCKER_CERT_PATH/ca.pem and shows it cert.pem and key.pem. */
      tls?: { certPath: string };
    };

/** dockerd's own default, and the docker CLI's. */
export const DEFAULT_SOCKET = '/var/run/docker.sock';
/** The ports dockerd is conventionally bound to without and with TLS (the docker CLI's defaults). */
const DEFAULT_PORT = 2375;
const DEFAULT_TLS_PORT = 2376;

export type DockerEnvironment = Partial<Record<'DOCKER_HOST' | 'DOCKER_TLS_VERIFY' | 'DOCKER_TLS' | 'DOCKER_CERT_PATH' | 'HOME', string>>;

export function dockerEndpoint(env: DockerEnvironment): DockerEndpoint {
  const host = env.DOCKER_HOST ?? '';
  if (host === '') return { transport: 'unix', path: DEFAULT_SOCKET };
  if (host.startsWith('unix://')) return { transport: 'unix', path: host.slice('unix://'.length) || DEFAULT_SOCKET };
  if (!host.startsWith('tcp://')) {
    throw new ConfigError(`DOCKER_HOST="${host}" is not supported: use unix:///PATH or tcp://HOST:PORT (no ssh://, fd:// or npipe://)`);
  }
  // The docker CLI takes any non-empty DOCKER_TLS_VERIFY (even "0") as on; so do we, so both talk to the same daemon the same way.
  const tls = Boolean(env.DOCKER_TLS_VERIFY);
  if (!tls && env.DOCKER_TLS) {
    // A firewall that takes its networks from an unverified peer would filter whatever that peer says.
    throw new ConfigError('DOCKER_TLS without DOCKER_TLS_VERIFY (TLS that does not check the daemon) is not supported: set DOCKER_TLS_VERIFY=1');
  }
  const rest = host.slice('tcp://'.length).replace(/\/$/, '');
  const parts = splitHostPort(rest);
  const port = parts?.port === undefined ? (tls ? DEFAULT_TLS_PORT : DEFAULT_PORT) : portNumber(parts.port);
  if (!parts?.host || port === undefined) {
    throw new ConfigError(`DOCKER_HOST="${host}" is not an address: use tcp://HOST:PORT (a path after it is not supported)`);
  }
  const certPath = env.DOCKER_CERT_PATH || join(env.HOME || homedir(), '.docker');
  return { transport: 'tcp', host: parts.host, port, ...(tls ? { tls: { certPath } } : {}) };
}
