/**
 * The lab's "internet": a namespace joined to a host namespace by a veth, holding
 * documentation addresses and a TCP server on each of them (80, 443, and 8080 which
 * tests expect to stay closed). The host gets routes to it and nothing beyond.
 *
 *   host: uplink 198.51.100.1/24, route 203.0.113.0/24 (and any other /24 of extra) via 198.51.100.10
 *   internet: eth0 198.51.100.10-14/24 + 203.0.113.10/24 (+ extra), default via 198.51.100.1
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Namespace, link } from './netns.js';

export const UPLINK = '198.51.100.1';
export const INTERNET = ['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.13', '198.51.100.14', '203.0.113.10'] as const;
export const PORTS = [80, 443, 8080] as const;

export const TCP_SERVER = fileURLToPath(new URL('./tcp-server.mjs', import.meta.url));

export interface Internet {
  namespace: Namespace;
  /** Every address the TCP servers answer on. */
  addresses: readonly string[];
  /** PEM of the self-signed certificate served to TLS clients: pass it to curl --cacert. */
  certificate: string;
  stop(): Promise<void>;
}

/** `extra` addresses (documentation ranges) join the fixed ones, e.g. one per fresh name in a benchmark. */
export async function createInternet(host: Namespace, extra: readonly string[] = []): Promise<Internet> {
  const namespace = await Namespace.create('ohni');
  const addresses = [...INTERNET, ...extra];
  try {
    await link(host, 'uplink', namespace, 'eth0');
    await host.addAddress('uplink', `${UPLINK}/24`);
    for (const network of routedNetworks(addresses)) await host.addRoute(network, INTERNET[0]);
    for (const address of addresses) await namespace.addAddress('eth0', `${address}/24`);
    await namespace.addRoute('default', UPLINK);
    const tls = await makeCertificate(addresses);
    const { child: servers } = await startTcpServers(namespace, ['--tls', tls.certificate, tls.key, ...PORTS.map(String)]);
    return {
      namespace,
      addresses,
      certificate: tls.certificate,
      async stop() {
        servers.kill('SIGKILL');
        await servers;
        await namespace.remove();
        await rm(tls.dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await namespace.remove();
    throw err;
  }
}

/** Every /24 of the internet's addresses but the uplink's own (which is on the link): 203.0.113.0/24, and 192.0.2.0/24 if asked for. */
function routedNetworks(addresses: readonly string[]): string[] {
  const slash24 = (address: string) => `${address.split('.').slice(0, 3).join('.')}.0/24`;
  return [...new Set(addresses.map(slash24))].filter((network) => network !== slash24(UPLINK));
}

/** The lab's names and addresses that TLS clients may check the certificate against. */
export const TLS_NAMES = ['allowed.test', 'multi.test', 'alias.test', 'mid.test', 'denied.test', 'other.test'];

/** A throwaway self-signed certificate for the internet's names and addresses (openssl, 2 days). */
async function makeCertificate(addresses: readonly string[]): Promise<{ dir: string; certificate: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-tls-'));
  const certificate = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const san = [...TLS_NAMES.map((n) => `DNS:${n}`), ...addresses.map((a) => `IP:${a}`)].join(',');
  await execa('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=on-his-name lab internet', '-addext', `subjectAltName=${san}`, '-keyout', key, '-out', certificate,
  ]);
  return { dir, certificate, key };
}

/**
 * tcp-server.mjs in `namespace`, resolved once it printed "ready"; rejects if it exits first.
 * (Wrapped in an object: the child is itself a promise, which `await` would wait out.)
 */
export async function startTcpServers(namespace: Namespace, listeners: readonly string[]): Promise<{ child: ResultPromise }> {
  const child = execa('ip', ['netns', 'exec', namespace.name, process.execPath, TCP_SERVER, ...listeners], {
    reject: false,
    buffer: { stdout: false, stderr: true },
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    void child.then((result) => reject(new Error(`tcp-server.mjs exited (${result.exitCode}): ${String(result.stderr)}`)));
  });
  return { child };
}
