/**
 * A stand-in for the best listening dnstap producer there could be, for labs and
 * benchmarks: a DNS server that answers the lab's zone (the same ZoneRecord list unbound
 * gets) on UDP and TCP, and the moment each answer is in the kernel writes it as a dnstap
 * CLIENT_RESPONSE (the whole response, query_address = the asker) in one Frame Streams data
 * frame to every reader of its listening Unix socket, which on-his-name dials with
 * `--connect unix:///PATH`. CoreDNS's `dnstap listen` (1.14.4+) does the same, plus its
 * own plugin chain and an io goroutine between the two; nothing buffers here, so what
 * on-his-name achieves against this is a floor for connect mode, not CoreDNS's figure.
 * The order stays CoreDNS's: answer first, report after.
 *
 * It runs as its own process inside the lab's namespace (instant-dnstap-dns-process.ts),
 * like unbound, so that it can bind the Docker network's gateway there.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit, removeDirectorySync } from './cleanup.js';
import { stopper } from './exec.js';
import type { Namespace } from './netns.js';
import type { ZoneRecord } from './unbound.js';

const PROCESS = fileURLToPath(new URL('./instant-dnstap-dns-process.ts', import.meta.url));
/** Where `--import tsx` resolves from. */
const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

/** What the process reads from its config file. */
export interface InstantDnstapDnsConfig {
  /** Address to answer on, e.g. the Docker network's gateway. */
  listen: string;
  port: number;
  zone: string;
  records: readonly ZoneRecord[];
  /** The Unix socket it listens on for dnstap readers. */
  dnstapSocket: string;
}

export interface InstantDnstapDnsOptions extends Omit<InstantDnstapDnsConfig, 'port'> {
  namespace: Namespace;
  port?: number;
}

export interface InstantDnstapDns {
  pid: number | undefined;
  /** What the process wrote to stderr. */
  output(): string;
  /** SIGTERM (it says STOP to its readers), SIGKILL after 5 s; then its files go. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startInstantDnstapDns(options: InstantDnstapDnsOptions): Promise<InstantDnstapDns> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-instant-dns-'));
  const unregister = onExit(() => removeDirectorySync(dir));
  const config = join(dir, 'config.json');
  const { namespace, ...rest } = options;
  await writeFile(config, JSON.stringify({ ...rest, port: options.port ?? 53 } satisfies InstantDnstapDnsConfig));
  const child: ResultPromise = execa('ip', ['netns', 'exec', namespace.name, process.execPath, '--import', 'tsx', PROCESS, config], {
    cwd: REPOSITORY,
    reject: false,
    buffer: false,
  });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const stop = stopper(child, dir, unregister);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      void child.then((result) => reject(new Error(`the instant dnstap DNS stand-in exited (${result.exitCode}):\n${log}`)));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid, output: () => log, stop };
}
