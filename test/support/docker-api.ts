/**
 * A fake Docker Engine API: node:http on a Unix socket in a temp dir, answering whatever
 * the test routes. It records each request line, and can go away as dockerd does when it
 * stops (every connection cut, the socket gone) and come back on the same path.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Route = (request: IncomingMessage, response: ServerResponse) => void;

export interface FakeDockerApi {
  socket: string;
  /** `GET /path?query`, decoded, in the order they came. */
  requests: string[];
  /** Answer `path` (without the query) with `route` from now on. */
  route(path: string, route: Route): void;
  /** dockerd stops: every open connection (an /events stream too) is cut and the socket removed. */
  stop(): Promise<void>;
  /** dockerd is back on the same socket. */
  start(): Promise<void>;
  /** Stop and remove the temp dir. */
  close(): Promise<void>;
}

/** A JSON answer, as dockerd sends it. */
export function json(status: number, body: unknown): Route {
  return (_request, response) => {
    response.writeHead(status, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(body));
  };
}

export async function fakeDockerApi(): Promise<FakeDockerApi> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-docker-api-'));
  const socket = join(dir, 'docker.sock');
  const routes = new Map<string, Route>();
  const requests: string[] = [];
  let server: Server | undefined;
  const connections = new Set<Socket>();

  const start = async () => {
    const s = createServer((request, response) => {
      requests.push(`${request.method} ${decodeURIComponent(request.url ?? '')}`);
      const route = routes.get(decodeURIComponent(new URL(request.url ?? '/', 'http://docker').pathname));
      if (route) return route(request, response);
      json(404, { message: `page not found: ${request.url}` })(request, response);
    });
    s.on('connection', (c) => {
      connections.add(c);
      c.once('close', () => connections.delete(c));
    });
    await new Promise<void>((resolve) => s.listen(socket, resolve));
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closed = new Promise((resolve) => s.close(resolve));
    for (const c of connections) c.destroy();
    await closed;
  };

  await start();
  return {
    socket,
    requests,
    route: (path, route) => routes.set(path, route),
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
