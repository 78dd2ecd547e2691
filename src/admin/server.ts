/**
 * The admin HTTP server: node:http, GET only, one handler per path. Handlers return a
 * status, a content type and a body; this file owns the socket, the errors and the
 * warning that a non-loopback address is reachable by anyone who can route to it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError } from '../util/errors.js';
import { formatHostPort } from '../util/host-port.js';

export interface Reply {
  status: number;
  contentType: string;
  body: string;
}

export type Handler = () => Promise<Reply>;

export interface AdminServerOptions {
  address: { host: string; port: number; loopback: boolean };
  routes: Readonly<Record<string, Handler>>;
  log: Logger;
}

export interface AdminServer {
  /** e.g. http://127.0.0.1:9090 (the bound port, if 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

export const JSON_TYPE = 'application/json; charset=utf-8';

export function json(status: number, value: unknown): Reply {
  return { status, contentType: JSON_TYPE, body: `${JSON.stringify(value, null, 2)}\n` };
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { address, routes, log } = options;
  const server = createServer((req, res) => void serve(req, res, routes, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`--admin-listen ${formatHostPort(address.host, address.port)}: ${listenProblem(err)}`, { cause: err });
  });
  const bound = server.address() as AddressInfo;
  const url = `http://${formatHostPort(bound.address, bound.port)}`;
  if (address.loopback) log.info({ url }, 'admin API listening');
  else log.warn({ url }, 'admin API listening on a non-loopback address: it has no authentication, anyone who can reach it can read it');
  return {
    url,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, routes: Readonly<Record<string, Handler>>, log: Logger): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname;
  const handler = Object.hasOwn(routes, path) ? routes[path] : undefined;
  let reply: Reply;
  if (!handler) reply = json(404, { error: `no such path: ${path}`, paths: Object.keys(routes) });
  else if (req.method !== 'GET') reply = json(405, { error: `${req.method} is not allowed: the admin API is read-only, use GET` });
  else {
    try {
      reply = await handler();
    } catch (err) {
      log.warn({ path, err: (err as Error).message }, 'admin API request failed');
      reply = json(500, { error: (err as Error).message });
    }
  }
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'cache-control': 'no-store',
    ...(reply.status === 405 ? { allow: 'GET' } : {}),
  });
  res.end(reply.body);
}

function listenProblem(err: NodeJS.ErrnoException): string {
  if (err.code === 'EADDRINUSE') return 'the address is already in use: pick another port';
  if (err.code === 'EADDRNOTAVAIL') return 'no interface of this host has that address: give one of its addresses, or a port alone for loopback';
  if (err.code === 'EACCES') return 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024';
  return err.message;
}

