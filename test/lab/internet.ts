/**
 * The lab's "internet": a namespace joined to a host namespace by a veth, holding
 * documentation addresses and a TCP server on each of them (80, 443, and 8080 which
 * tests expect to stay closed). The host gets routes to it and nothing beyond.
 */
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';
import { Namespace, link } from './netns.js';

export const UPLINK = '198.51.100.1';
export const INTERNET = ['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.13', '198.51.100.14', '203.0.113.10'] as const;
export const PORTS = [80, 443, 8080] as const;

const TCP_SERVER = fileURLToPath(new URL('./tcp-server.mjs', import.meta.url));

export interface Internet {
  namespace: Namespace;
  stop(): Promise<void>;
}

/** `extra` addresses (documentation ranges) join the fixed ones, e.g. one per fresh name in a benchmark. */
export async function createInternet(host: Namespace, extra: readonly string[] = []): Promise<Internet> {
  const namespace = await Namespace.create('ohni');
  try {
    await link(host, 'uplink', namespace, 'eth0');
    await host.ip('addr', 'add', `${UPLINK}/24`, 'dev', 'uplink');
    await host.ip('route', 'add', '203.0.113.0/24', 'via', INTERNET[0]);
    for (const address of [...INTERNET, ...extra]) await namespace.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    await namespace.ip('route', 'add', 'default', 'via', UPLINK);
    const servers: ResultPromise = execa(
      'ip',
      ['netns', 'exec', namespace.name, process.execPath, TCP_SERVER, ...PORTS.map(String)],
      { reject: false },
    );
    await new Promise<void>((resolve) => servers.stdout?.once('data', () => resolve()));
    return {
      namespace,
      async stop() {
        servers.kill('SIGKILL');
        await servers;
        await namespace.remove();
      },
    };
  } catch (err) {
    await namespace.remove();
    throw err;
  }
}
