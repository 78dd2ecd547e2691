/**
 * A scriptable DNS server as its own process in a lab namespace (the lab's "internet", a
 * container, the host), to stand for the resolver behind on-his-name's inline proxy where
 * a hostile container can reach it or forge its address: it answers the lab's zone as
 * unbound would (zone-answers.ts), and on request
 * - never answers names matching `silent` (an upstream that hangs on them);
 * - answers names matching `delay.match` only after `delay.ms` (a recursive resolution of
 *   a name nobody has cached: the window a forger aims at);
 * - answers every TCP query for a name under `flood.suffix` with `flood.perAnswer` fresh
 *   addresses counted up from `flood.base` (a hostile zone flooding a wildcard).
 * Every query it receives is a JSON line in `queries`, so tests can wait on it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit, removeDirectorySync } from './cleanup.js';
import type { Namespace } from './netns.js';
import { startReady, type Line } from './ns-process.js';
import type { ZoneRecord } from './unbound.js';

const PROCESS = fileURLToPath(new URL('./fake-dns-process.ts', import.meta.url));

export interface FakeDnsConfig {
  listen: string;
  port: number;
  zone: string;
  records: readonly ZoneRecord[];
  /** A regular expression (source, case-insensitive) of names never answered. */
  silent?: string;
  delay?: { match: string; ms: number };
  /** TCP answers of fresh addresses for every name under `suffix`. */
  flood?: { suffix: string; perAnswer: number; base: string; ttl: number };
}

export interface FakeDns {
  address: { host: string; port: number };
  /** The queries received so far, in order. */
  queries: Array<{ name: string; type: string; transport: 'udp' | 'tcp' }>;
  waitForQuery(match: (query: { name: string; transport: string }) => boolean, timeoutMs: number): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

export async function startFakeDns(namespace: Namespace, config: Omit<FakeDnsConfig, 'port'> & { port?: number }): Promise<FakeDns> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-fake-dns-'));
  const unregister = onExit(() => removeDirectorySync(dir));
  const file = join(dir, 'config.json');
  const port = config.port ?? 53;
  await writeFile(file, JSON.stringify({ ...config, port } satisfies FakeDnsConfig));
  const removeDir = async () => {
    await rm(dir, { recursive: true, force: true });
    unregister();
  };
  const child = await startReady(namespace, PROCESS, [file]).catch(async (err: unknown) => {
    await removeDir();
    throw err;
  });
  const isQuery = (line: Line) => typeof line.name === 'string' && typeof line.transport === 'string';
  return {
    address: { host: config.listen, port },
    get queries() {
      return child.lines.filter(isQuery) as FakeDns['queries'];
    },
    async waitForQuery(match, timeoutMs) {
      await child.waitForLine((line) => isQuery(line) && match(line as { name: string; transport: string }), timeoutMs, 'such a query');
    },
    output: () => child.output(),
    async stop() {
      await child.stop();
      await removeDir();
    },
  };
}
