/**
 * CoreDNS as the lab's DNS server, when a `coredns` binary is on the PATH: the repository's
 * own coredns/Corefile, with its bind address, dnstap socket and upstream pointed at the
 * lab. The lab's names come from unbound answering on loopback as the upstream, so that
 * CoreDNS runs exactly the forward + cache + dnstap path a user runs.
 *
 * CoreDNS is not packaged in Debian; without it the labs use unbound with dnstap directly.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit, removeDirectorySync } from './cleanup.js';
import { stopper } from './exec.js';
import type { Namespace } from './netns.js';

export const COREFILE = new URL('../../coredns/Corefile', import.meta.url);
/** dnstap listen mode: CoreDNS makes the socket and on-his-name --connect dials it. */
export const COREFILE_LISTEN = new URL('../../coredns/Corefile.listen', import.meta.url);
/** The first CoreDNS with `dnstap listen`. */
const LISTEN_SINCE = [1, 14, 4];

export interface CoreDnsOptions {
  namespace: Namespace;
  /** The address to bind, e.g. the Docker network's gateway. */
  listen: string;
  dnstapSocket: string;
  /** ADDRESS:PORT of the resolver CoreDNS forwards to. */
  upstream: string;
  /** push (coredns/Corefile, the default) or listen (coredns/Corefile.listen). */
  dnstap?: 'push' | 'listen';
}

export interface CoreDns {
  pid: number | undefined;
  output(): string;
  stop(): Promise<void>;
}

export async function hasCoreDns(): Promise<boolean> {
  return (await execa('sh', ['-c', 'command -v coredns'], { reject: false })).exitCode === 0;
}

/**
 * The user's Corefile with the lab's addresses: every `bind`, the dnstap socket and the
 * `forward` upstream. Throws when one of them is missing, so that a Corefile edited out
 * of this shape is noticed by the tests rather than silently run differently.
 */
/** CoreDNS on the PATH that has `dnstap listen` (1.14.4 or later). */
export async function hasCoreDnsListen(): Promise<boolean> {
  const { stdout, exitCode } = await execa('coredns', ['-version'], { reject: false });
  return exitCode === 0 && hasDnstapListen(String(stdout));
}

/** From `coredns -version`, which prints "CoreDNS-1.14.4" among other lines. */
export function hasDnstapListen(versionText: string): boolean {
  const version = /CoreDNS-(\d+)\.(\d+)\.(\d+)/.exec(versionText)?.slice(1).map(Number);
  if (!version) return false;
  const at = version.findIndex((part, i) => part !== LISTEN_SINCE[i]);
  return at < 0 || version[at]! > LISTEN_SINCE[at]!;
}

export function labCorefile(corefile: string, options: Omit<CoreDnsOptions, 'namespace' | 'dnstap'>): string {
  const rewrites: Array<[RegExp, string]> = [
    [/^(\s*bind)\s+\S+/m, `$1 ${options.listen}`],
    [/^(\s*forward\s+\.)\s+\S+/m, `$1 ${options.upstream}`],
    [/^(\s*dnstap(?:\s+listen)?)\s+unix:\/\/\S+/m, `$1 unix://${options.dnstapSocket}`],
  ];
  return rewrites.reduce((text, [pattern, replacement]) => {
    if (!pattern.test(text)) throw new Error(`coredns/Corefile has no line matching ${pattern}`);
    return text.replace(pattern, replacement);
  }, corefile);
}

export async function startCoreDns(options: CoreDnsOptions): Promise<CoreDns> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-coredns-'));
  const unregister = onExit(() => removeDirectorySync(dir));
  const conf = join(dir, 'Corefile');
  await writeFile(conf, labCorefile(await readFile(options.dnstap === 'listen' ? COREFILE_LISTEN : COREFILE, 'utf8'), options));
  const child: ResultPromise = execa('ip', ['netns', 'exec', options.namespace.name, 'coredns', '-conf', conf], {
    reject: false,
    buffer: false,
    all: true,
  });
  let log = '';
  child.all?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const stop = stopper(child, dir, unregister);
  await waitForStart(child, () => log).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { pid: child.pid, output: () => log, stop };
}

/** CoreDNS prints its server blocks ("test.:53" / ".:53") once it serves. */
async function waitForStart(child: ResultPromise, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!/:53\b/.test(log())) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`coredns did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
