/**
 * The Docker lab: the blog's scene on a real dockerd, offline, in namespaces.
 *
 *   host namespace (no route out): dockerd, network "on-his-name" (br-…), unbound with
 *   dnstap on the network's gateway, on-his-name started by network name
 *     └─ uplink (198.51.100.1) ── internet namespace: TCP 80/443/8080 at documentation addresses
 *
 * Used by the end-to-end suite, `npm run demo` and benchmarks. close() removes containers,
 * dockerd, unbound, namespaces and temporary files, also when creation fails half-way.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { hasCoreDns, hasCoreDnsListen, startCoreDns, type CoreDns } from './coredns.js';
import { startDockerd, type Dockerd } from './dockerd.js';
import { DEFAULT_RECORDS } from './firewall-lab.js';
import { importLabImage } from './image.js';
import { startInstantDnstapDns, type InstantDnstapDns } from './instant-dnstap-dns.js';
import { createInternet, type Internet } from './internet.js';
import { Namespace } from './netns.js';
import { startUnbound, unboundUid, type Unbound, type ZoneRecord } from './unbound.js';

/** The lab's DNS server with dnstap, whichever it is. */
export type LabDns = ({ kind: 'unbound' } & Unbound) | ({ kind: 'coredns' } & CoreDns);

/** Where unbound answers the lab's zone for CoreDNS (or on-his-name in inline mode) to forward to. */
export const UPSTREAM_PORT = 5300;

export const NETWORK = 'on-his-name';

export interface DockerLabOptions {
  records?: readonly ZoneRecord[];
  /** More "internet" addresses, e.g. one per fresh name in a benchmark. */
  internetAddresses?: readonly string[];
  /** Progress lines for a person watching (the demo). */
  progress?: (message: string) => void;
  /**
   * push (the default): the DNS server writes to on-his-name's socket. connect: CoreDNS
   * 1.14.4+ listens (coredns/Corefile.listen) and on-his-name --connect dials it;
   * startDns() refuses without such a CoreDNS on the PATH (startInstantDns() is the
   * stand-in, under its own name).
   */
  dnstap?: 'push' | 'connect';
  /**
   * Create the network with this IPv4 subnet (x.y.z.0/BITS; the gateway is x.y.z.1), as
   * `docker network create --subnet`: Docker lets containers take a fixed `--ip` only on a
   * network whose subnet was given. Default: Docker picks one.
   */
  subnet?: string;
}

export interface Network {
  name: string;
  bridge: string;
  gateway: string;
  subnet: string;
}

export interface RunResult {
  ok: boolean;
  output: string;
  seconds: number;
}

export interface DockerLab {
  host: Namespace;
  internet: Namespace;
  dockerd: Dockerd;
  network: Network;
  image: string;
  dnstapSocket: string;
  /**
   * on-his-name, started as the README says: by network name. Its dnstap source is the
   * lab's (options.dnstap) unless `source` says otherwise: push listens on dnstapSocket,
   * connect dials it (--connect alone, so nothing listens).
   */
  startDaemon(patterns: readonly string[], extra?: readonly string[], source?: { dnstap: 'push' | 'connect' }): Promise<CliProcess>;
  daemon(): CliProcess | undefined;
  /** CoreDNS with the repository's Corefile when `coredns` is on the PATH, else unbound with dnstap. */
  startDns(): Promise<LabDns>;
  /**
   * The stand-in listening producer (instant-dnstap-dns.ts) on the gateway: answers the
   * lab's zone and reports each answer on dnstapSocket the instant it is sent. For
   * startDaemon(…, …, { dnstap: 'connect' }).
   */
  startInstantDns(): Promise<InstantDnstapDns>;
  /** unbound without dnstap on 127.0.0.1:UPSTREAM_PORT: the resolver behind on-his-name in inline mode. */
  startUpstreamDns(): Promise<Unbound>;
  /** `docker run --rm` of the lab image; on the on-his-name network with --dns=gateway unless told otherwise. */
  run(command: readonly string[], options?: { network?: 'on-his-name' | 'default'; extra?: readonly string[]; timeoutSeconds?: number }): Promise<RunResult>;
  /** curl from a fresh container (trusting the internet's certificate); ok when the HTTP exchange completed. */
  curl(url: string, options?: { network?: 'on-his-name' | 'default'; timeoutSeconds?: number }): Promise<RunResult>;
  iptables(...args: string[]): Promise<string>;
  rules(): Promise<string[]>;
  /** `iptables -vL DOCKER-USER` as a person reads it. */
  listing(): Promise<string>;
  close(): Promise<void>;
}

export async function createDockerLab(options: DockerLabOptions = {}): Promise<DockerLab> {
  const say = options.progress ?? (() => undefined);
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  const dir = await mkdtemp(join(tmpdir(), 'ohn-docker-lab-'));
  await chmod(dir, 0o755);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));

  try {
    say('creating the host and internet namespaces');
    const host = await Namespace.create('ohnd');
    cleanups.push(() => host.remove());
    await host.enableForwarding();
    const internet: Internet = await createInternet(host, options.internetAddresses);
    cleanups.push(() => internet.stop());

    say('starting dockerd in the host namespace (this takes a few seconds)');
    const dockerd = await startDockerd(host, join(dir, 'docker'));
    cleanups.push(() => removeContainers(dockerd).then(() => dockerd.stop()));

    say('importing the busybox + curl image');
    const image = await importLabImage(dockerd);

    const subnet = options.subnet ? ['--subnet', options.subnet, '--gateway', firstAddress(options.subnet)] : [];
    say(`docker network create ${[...subnet, NETWORK].join(' ')}`);
    await dockerd.docker(['network', 'create', ...subnet, NETWORK]);
    const network = await inspectNetwork(dockerd);

    const dnstapSocket = join(dir, 'dnstap.sock');
    let daemon: CliProcess | undefined;
    cleanups.push(async () => daemon?.stop());
    const iptables = (...args: string[]) => host.exec('iptables', args);

    const run: DockerLab['run'] = async (command, opts = {}) => {
      const onNetwork = (opts.network ?? NETWORK) === NETWORK;
      const args = ['run', '--rm', ...(onNetwork ? ['--network', NETWORK, '--dns', network.gateway] : ['--dns', network.gateway]), ...(opts.extra ?? []), image, ...command];
      const started = Date.now();
      const result = await dockerd.docker(args, { reject: false, timeoutMs: ((opts.timeoutSeconds ?? 20) + 15) * 1000 });
      return { ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}`.trim(), seconds: (Date.now() - started) / 1000 };
    };

    return {
      host,
      internet: internet.namespace,
      dockerd,
      network,
      image,
      dnstapSocket,
      async startDaemon(patterns, extra = [], how = { dnstap: options.dnstap ?? 'push' }) {
        await daemon?.stop();
        const source = how.dnstap === 'connect' ? ['--connect', `unix://${dnstapSocket}`] : ['--listen', dnstapSocket, '--socket-uid', String(await unboundUid())];
        daemon = startCli(host.name, ['--network', NETWORK, ...source, ...extra, ...patterns], dockerd.env);
        await daemon.waitFor((l) => l.msg === 'on-his-name is running', 15_000);
        return daemon;
      },
      daemon: () => daemon,
      async startDns() {
        const records = options.records ?? DEFAULT_RECORDS;
        const listen = options.dnstap === 'connect';
        if (listen && !(await hasCoreDnsListen())) {
          throw new Error('dnstap connect mode needs CoreDNS 1.14.4 or later (dnstap listen) on the PATH; none found');
        }
        if (await hasCoreDns()) {
          say(`starting CoreDNS (coredns/${listen ? 'Corefile.listen' : 'Corefile'}) on the network gateway ${network.gateway}, unbound behind it on 127.0.0.1:${UPSTREAM_PORT}`);
          const upstream = await startUnbound({ namespace: host, listen: '127.0.0.1', port: UPSTREAM_PORT, zone: 'test.', records });
          cleanups.push(() => upstream.stop());
          const coredns = await startCoreDns({ namespace: host, listen: network.gateway, dnstapSocket, upstream: `127.0.0.1:${UPSTREAM_PORT}`, dnstap: listen ? 'listen' : 'push' });
          cleanups.push(() => coredns.stop());
          return { kind: 'coredns', ...coredns };
        }
        say(`starting unbound with dnstap on the network gateway ${network.gateway} (no coredns on the PATH)`);
        const unbound = await startUnbound({ namespace: host, listen: network.gateway, zone: 'test.', records, dnstapSocket });
        cleanups.push(() => unbound.stop());
        return { kind: 'unbound', ...unbound };
      },
      async startInstantDns() {
        say(`starting the stand-in listening producer on the network gateway ${network.gateway}: it reports each answer the instant it sends it`);
        const dns = await startInstantDnstapDns({ namespace: host, listen: network.gateway, zone: 'test.', records: options.records ?? DEFAULT_RECORDS, dnstapSocket });
        cleanups.push(() => dns.stop());
        return dns;
      },
      async startUpstreamDns() {
        say(`starting unbound on 127.0.0.1:${UPSTREAM_PORT}, without dnstap, behind on-his-name's inline DNS`);
        const upstream = await startUnbound({ namespace: host, listen: '127.0.0.1', port: UPSTREAM_PORT, zone: 'test.', records: options.records ?? DEFAULT_RECORDS });
        cleanups.push(() => upstream.stop());
        return upstream;
      },
      run,
      curl: (url, opts = {}) => {
        const seconds = opts.timeoutSeconds ?? 8;
        // The internet's self-signed certificate, so that https:// URLs make a real, verified handshake.
        const trust = ['-v', `${internet.certificate}:/etc/lab-ca.pem:ro`];
        return run(['curl', '-sS', '--cacert', '/etc/lab-ca.pem', '--max-time', String(seconds), url], {
          ...(opts.network ? { network: opts.network } : {}),
          extra: trust,
          timeoutSeconds: seconds,
        });
      },
      iptables,
      rules: async () => (await iptables('-S', 'DOCKER-USER')).split('\n'),
      listing: () => iptables('-vL', 'DOCKER-USER'),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** 172.29.0.0/24 → 172.29.0.1, as Docker picks a gateway. */
function firstAddress(subnet: string): string {
  const gateway = subnet.replace(/\.0\/\d+$/, '.1');
  if (gateway === subnet) throw new Error(`the lab's subnet must be IPv4 and end in .0/BITS, not ${subnet}`);
  return gateway;
}

async function inspectNetwork(dockerd: Dockerd): Promise<Network> {
  const { stdout } = await dockerd.docker(['network', 'inspect', NETWORK, '--format', '{{.Id}} {{(index .IPAM.Config 0).Gateway}} {{(index .IPAM.Config 0).Subnet}}']);
  const [id = '', gateway = '', subnet = ''] = stdout.trim().split(' ');
  return { name: NETWORK, bridge: `br-${id.slice(0, 12)}`, gateway, subnet };
}

async function removeContainers(dockerd: Dockerd): Promise<void> {
  const { stdout } = await dockerd.docker(['ps', '-aq'], { reject: false });
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length) await dockerd.docker(['rm', '-f', ...ids], { reject: false });
}
