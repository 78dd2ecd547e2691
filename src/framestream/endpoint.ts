/**
 * Where Frame Streams flow: a Unix socket path or a TCP address, parsed from the
 * Corefile-like forms `unix:///PATH`, `/PATH` and `tcp://HOST:PORT`. Pure: a string in,
 * an Endpoint out, or a ConfigError that names the problem and the fix.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../util/errors.js';
import { formatHostPort, isLoopbackHost, portNumber, splitHostPort } from '../util/host-port.js';

export { isLoopbackHost };

export type Endpoint = { transport: 'unix'; path: string } | { transport: 'tcp'; host: string; port: number };

/** Bound when `tcp://:PORT` or `tcp://PORT` names no host: TCP carries no authentication. */
export const DEFAULT_TCP_HOST = '127.0.0.1';

/**
 * Where on-his-name listens for producers that push. A TCP host must be an address (so
 * that we know whether it is loopback); none means 127.0.0.1.
 */
export function parseListenEndpoint(value: string, source: string): Endpoint {
  if (!value.startsWith('tcp://')) return { transport: 'unix', path: parseSocketPath(value, source) };
  const { host, port } = splitTcp(value, source);
  if (host !== '' && isIP(host) === 0) {
    throw new ConfigError(`${source} "${value}" must name an IP address to listen on, not a host name: e.g. tcp://127.0.0.1:${port}`);
  }
  return { transport: 'tcp', host: host === '' ? DEFAULT_TCP_HOST : host, port };
}

/** A producer that listens (CoreDNS `dnstap listen …`); on-his-name dials it. */
export function parseConnectEndpoint(value: string, source: string): Endpoint {
  if (!value.startsWith('tcp://')) return { transport: 'unix', path: parseSocketPath(value, source) };
  const { host, port } = splitTcp(value, source);
  if (host === '') throw new ConfigError(`${source} "${value}" names no host to connect to: e.g. tcp://127.0.0.1:${port}`);
  return { transport: 'tcp', host, port };
}

/** The form the flags take, for logs and messages. */
export function formatEndpoint(endpoint: Endpoint): string {
  if (endpoint.transport === 'unix') return `unix://${endpoint.path}`;
  return `tcp://${formatHostPort(endpoint.host, endpoint.port)}`;
}

/** A Unix socket path; `unix://` is accepted for symmetry with Corefile syntax. */
function parseSocketPath(value: string, source: string): string {
  const path = value.startsWith('unix://') ? value.slice('unix://'.length) : value;
  if (path.startsWith('/') || path.startsWith('./') || path.startsWith('../')) return path;
  if (/^[^/]*:\d+$/.test(path)) {
    const port = path.slice(path.lastIndexOf(':') + 1);
    throw new ConfigError(`${source}=${value} is a TCP address without its scheme: write tcp://HOST:PORT, e.g. tcp://127.0.0.1:${port}`);
  }
  throw new ConfigError(`${source} "${value}" must be a Unix socket path starting with "/" or "./", or tcp://HOST:PORT`);
}

/** `tcp://HOST:PORT`, `tcp://[V6]:PORT`, `tcp://:PORT` or `tcp://PORT`; host '' when none is given. */
function splitTcp(value: string, source: string): { host: string; port: number } {
  const rest = value.slice('tcp://'.length);
  const parts = /^\d+$/.test(rest) ? { host: '', port: rest } : splitHostPort(rest);
  if (parts?.port === undefined) {
    const fix = rest.split(':').length > 2 ? ' (an IPv6 address goes in brackets: tcp://[::1]:6000)' : ' (e.g. tcp://127.0.0.1:6000)';
    throw new ConfigError(`${source} "${value}" is not tcp://HOST:PORT${fix}`);
  }
  const port = portNumber(parts.port);
  if (port === undefined) throw new ConfigError(`${source} "${value}" has port ${parts.port}: a TCP port is 1 to 65535`);
  return { host: parts.host, port };
}
