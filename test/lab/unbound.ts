/**
 * unbound as a lab DNS server with dnstap: answers one zone from a zone file (auth-zone,
 * so CNAME chains inside the zone come back whole) and reports every client response to
 * a dnstap socket, retrying until that socket appears.
 */
import { execa, type ResultPromise } from 'execa';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.js';
import type { Namespace } from './netns.js';

export interface ZoneRecord {
  name: string;
  type: 'A' | 'AAAA' | 'CNAME';
  value: string;
  ttl?: number;
}

export interface UnboundOptions {
  namespace: Namespace;
  listen: string;
  zone: string;
  records: readonly ZoneRecord[];
  dnstapSocket: string;
}

export interface Unbound {
  uid: number;
  stop(): Promise<void>;
}

export async function unboundUid(): Promise<number> {
  return Number(await run('id', ['-u', 'unbound']));
}

export async function startUnbound(options: UnboundOptions): Promise<Unbound> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-unbound-'));
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'zone'), zoneFile(options.zone, options.records));
  await writeFile(join(dir, 'unbound.conf'), config(dir, options));
  const child: ResultPromise = execa('ip', ['netns', 'exec', options.namespace.name, 'unbound', '-d', '-c', join(dir, 'unbound.conf')], {
    reject: false,
    all: true,
  });
  await waitUntilAnswering(options, child);
  return {
    uid: await unboundUid(),
    async stop() {
      child.kill('SIGTERM');
      await child;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function zoneFile(zone: string, records: readonly ZoneRecord[]): string {
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
auth-zone:
  name: "${options.zone}"
  zonefile: "${join(dir, 'zone')}"
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
dnstap:
  dnstap-enable: yes
  dnstap-socket-path: "${options.dnstapSocket}"
  dnstap-send-identity: yes
  dnstap-send-version: yes
  dnstap-log-client-response-messages: yes
`;
}

async function waitUntilAnswering(options: UnboundOptions, child: ResultPromise): Promise<void> {
  const deadline = Date.now() + 10_000;
  let exited = false;
  void child.then(() => (exited = true));
  for (;;) {
    // The zone's SOA carries no address, so the probe never shows up as a decision.
    const probe = await execa('ip', ['netns', 'exec', options.namespace.name, 'dig', '+short', '+time=1', '+tries=1', `@${options.listen}`, options.zone, 'SOA'], {
      reject: false,
    });
    if (probe.exitCode === 0 && probe.stdout.trim() !== '') return;
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      const result = await child;
      throw new Error(`unbound did not start answering on ${options.listen}:\n${String(result.all ?? '')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
