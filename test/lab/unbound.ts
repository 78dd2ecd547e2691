/**
 * unbound as a lab DNS server with dnstap: answers one zone from a zone file (auth-zone,
 * so CNAME chains inside the zone come back whole; local-data does not follow them) and
 * reports every client query and response to a dnstap Unix socket.
 *
 * unbound drops privileges to user `unbound`, so whoever listens on the dnstap socket must
 * let that uid connect (chown the socket to unboundUid()). Measured on unbound 1.17.1:
 * - it connects bidirectionally (READY, wants ACCEPT with the dnstap content type, then
 *   START); without the matching ACCEPT it closes and retries every second;
 * - when the socket is missing or the reader goes away it retries after 0, 10, 20, 40 …
 *   up to 1000 ms, then every second, forever; messages wait in a queue meanwhile
 *   (1 MB per thread) and arrive after the reconnect;
 * - messages reach the socket up to ~1 s after the answer (a 1 s flush timer, or at once
 *   when 32 are queued), and those still queued when unbound stops are lost.
 */
import { execa, type ResultPromise } from 'execa';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit, removeDirectorySync } from './cleanup.js';
import { run, stopper } from './exec.js';
import type { Namespace } from './netns.js';

export interface ZoneRecord {
  /** Relative to the zone (`allowed`), or absolute with a trailing dot (`allowed.test.`). */
  name: string;
  type: 'A' | 'AAAA' | 'CNAME';
  value: string;
  ttl?: number;
}

export interface UnboundOptions {
  namespace: Namespace;
  /** Address to answer on, e.g. the bridge's 192.0.2.1. */
  listen: string;
  port?: number;
  /** The zone it is authoritative for, e.g. `test.`. Other names get REFUSED/SERVFAIL. */
  zone: string;
  records: readonly ZoneRecord[];
  /** Where to send dnstap; without it unbound only answers (e.g. as CoreDNS's upstream). */
  dnstapSocket?: string;
  /** Extra `server:` lines, e.g. `rrset-roundrobin: no`. */
  serverConfig?: readonly string[];
  startTimeoutMs?: number;
}

export interface Unbound {
  uid: number;
  pid: number | undefined;
  /** What unbound logged so far (stderr). */
  output(): string;
  /** SIGTERM (SIGKILL after 5 s), then remove its files. Safe to call twice. */
  stop(): Promise<void>;
}

/** The uid unbound runs as after dropping privileges. */
export async function unboundUid(): Promise<number> {
  return Number(await run('id', ['-u', 'unbound']));
}

export async function startUnbound(options: UnboundOptions): Promise<Unbound> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-unbound-'));
  const unregister = onExit(() => removeDirectorySync(dir));
  await chmod(dir, 0o755); // unbound, once it is user unbound, reads the zone file here
  await writeFile(join(dir, 'zone'), zoneFile(options.zone, options.records));
  await writeFile(join(dir, 'unbound.conf'), config(dir, options));
  const child: ResultPromise = execa('ip', ['netns', 'exec', options.namespace.name, 'unbound', '-d', '-c', join(dir, 'unbound.conf')], {
    reject: false,
    buffer: false,
    stdout: 'ignore',
  });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));

  const stop = stopper(child, dir, unregister);

  try {
    await waitUntilAnswering(options, child, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { uid: await unboundUid(), pid: child.pid, output: () => log, stop };
}

export function zoneFile(zone: string, records: readonly ZoneRecord[]): string {
  const origin = zone.endsWith('.') ? zone : `${zone}.`;
  return [
    `$ORIGIN ${origin}`,
    '$TTL 300',
    `@ IN SOA ns.${origin} hostmaster.${origin} 1 3600 600 86400 300`,
    `@ IN NS ns.${origin}`,
    'ns IN A 192.0.2.1',
    ...records.map((r) => `${r.name} ${r.ttl ?? 300} IN ${r.type} ${r.value}`),
    '',
  ].join('\n');
}

function config(dir: string, options: UnboundOptions): string {
  return `server:
  interface: ${options.listen}
  port: ${options.port ?? 53}
  do-daemonize: no
  chroot: ""
  username: "unbound"
  directory: "${dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 0.0.0.0/0 allow
  do-ip6: no
  local-zone: "${options.zone}" nodefault
${(options.serverConfig ?? []).map((line) => `  ${line}\n`).join('')}auth-zone:
  name: "${options.zone}"
  zonefile: "${join(dir, 'zone')}"
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
${options.dnstapSocket ? dnstapConfig(options.dnstapSocket) : ''}`;
}

function dnstapConfig(socket: string): string {
  return `dnstap:
  dnstap-enable: yes
  dnstap-socket-path: "${socket}"
  dnstap-send-identity: yes
  dnstap-send-version: yes
  dnstap-log-client-response-messages: yes
`;
}

async function waitUntilAnswering(options: UnboundOptions, child: ResultPromise, log: () => string): Promise<void> {
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  for (;;) {
    // The zone's SOA carries no address, so the probe never shows up as a decision.
    const probe = await execa(
      'ip',
      ['netns', 'exec', options.namespace.name, 'dig', '+short', '+time=1', '+tries=1', '-p', String(options.port ?? 53), `@${options.listen}`, options.zone, 'SOA'],
      { reject: false },
    );
    if (probe.exitCode === 0 && String(probe.stdout).trim() !== '') return;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`unbound did not start answering on ${options.listen}:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
