/**
 * The listening transport for Frame Streams, on a Unix socket (the default) or TCP:
 * accepts any number of producers at once and serves each connection on its own
 * (connection.ts). A producer that breaks the protocol loses its connection, never the
 * daemon or the other producers.
 */
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError } from '../util/errors.js';
import { ProducerWarnings, newStats, producerIds, serveProducer, type FrameStreamStats, type ServeOptions } from './connection.js';
import { formatEndpoint, isLoopbackHost, type Endpoint } from './endpoint.js';

export type { Producer } from './connection.js';
export type ListenerStats = FrameStreamStats;

export type ListenerOptions = ServeOptions &
  /** `path`: a Unix socket, the default transport; `endpoint`: a Unix socket or a TCP address. */
  ({ path: string } | { endpoint: Endpoint }) & {
    /** Owner of a Unix socket, so that an unprivileged DNS server may connect. */
    socketUid?: number;
    socketGid?: number;
  };

export interface FrameStreamListener {
  /** Where it listens; a TCP port 0 is replaced by the port the kernel chose. */
  readonly endpoint: Endpoint;
  /** The Unix socket path, or the TCP address as tcp://HOST:PORT. */
  readonly path: string;
  readonly stats: Readonly<ListenerStats>;
  close(): Promise<void>;
}

const MAX_PRODUCERS = 256;

export async function listenFrameStreams(options: ListenerOptions): Promise<FrameStreamListener> {
  const wanted: Endpoint = 'endpoint' in options ? options.endpoint : { transport: 'unix', path: options.path };
  const stats = newStats();
  const warnings = new ProducerWarnings(options.log, options.clock);
  const open = new Set<Socket>();
  const nextId = options.nextId ?? producerIds();
  const server = createServer((socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    serveProducer(socket, { id: nextId() }, options, stats, warnings);
  });
  server.maxConnections = MAX_PRODUCERS;

  const endpoint = wanted.transport === 'unix' ? await listenUnix(server, wanted.path, options) : await listenTcp(server, wanted, options);
  const path = endpoint.transport === 'unix' ? endpoint.path : formatEndpoint(endpoint);

  return {
    endpoint,
    path,
    stats,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      warnings.flush();
      if (endpoint.transport === 'unix') await unlink(endpoint.path).catch(() => undefined);
    },
  };
}

async function listenUnix(server: Server, path: string, options: ListenerOptions): Promise<Endpoint> {
  await clearStaleSocket(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await listenOwnerOnly(server, path);
  // chmod before chown: once the socket is the DNS server's, changing its mode would need CAP_FOWNER.
  await chmod(path, 0o600);
  if (options.socketUid !== undefined) await chown(path, options.socketUid, options.socketGid ?? -1);
  options.log.info({ path, socketUid: options.socketUid }, 'listening for dnstap');
  return { transport: 'unix', path };
}

/** TCP has no owner or mode: anyone who reaches the port can open the firewall, hence loopback by default. */
async function listenTcp(server: Server, wanted: Extract<Endpoint, { transport: 'tcp' }>, options: ListenerOptions): Promise<Endpoint> {
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(tcpListenError(err, wanted));
    server.once('error', fail);
    server.listen(wanted.port, wanted.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const endpoint: Endpoint = { ...wanted, port: (server.address() as AddressInfo).port };
  const address = formatEndpoint(endpoint);
  options.log.info({ address }, 'listening for dnstap over TCP');
  if (!isLoopbackHost(wanted.host)) {
    options.log.warn(
      { address },
      'dnstap over TCP on a non-loopback address: whoever reaches this port can open the firewall (no authentication); ' +
        'firewall the port or listen on 127.0.0.1',
    );
  }
  return endpoint;
}

function tcpListenError(err: NodeJS.ErrnoException, endpoint: Endpoint): Error {
  const address = formatEndpoint(endpoint);
  if (err.code === 'EADDRINUSE') return new ConfigError(`${address} is in use by another process: choose another --listen port`, { cause: err });
  if (err.code === 'EADDRNOTAVAIL') return new ConfigError(`${address} is not an address of this host: choose one it has, e.g. tcp://127.0.0.1:6000`, { cause: err });
  if (err.code === 'EACCES') return new ConfigError(`${address} needs privileges to bind: choose a port above 1023`, { cause: err });
  return err;
}

/**
 * A socket file left by a crashed instance is replaced; one that still accepts
 * connections belongs to a running instance and is refused.
 */
async function clearStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new ConfigError(`${path} exists and is not a socket: remove it or choose another --listen path`);
  }
  if (await isLive(path)) {
    throw new ConfigError(
      `another process is listening on ${path} (is on-his-name already running?): stop it or choose another --listen path`,
    );
  }
  await unlink(path);
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** The umask makes the socket 0600 from birth, so there is no window in which others may connect. */
async function listenOwnerOnly(server: Server, path: string): Promise<void> {
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
}
