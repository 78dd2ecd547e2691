/**
 * What inline mode costs on every DNS query: latency and rate of UDP queries answered
 * directly by an upstream, and through on-his-name's proxy (--dns-listen) in front of it,
 * for names it denies (passed through), for allowed names whose addresses are already open
 * (passed through, nothing to wait for) and for fresh allowed names (each answer held until
 * its addresses are in the kernel), with each backend in turn: --backend iptables, ipset and
 * nftables, each from an empty kernel, with the CLI's long-lived iptables-restore, ipset and
 * nft. Inside a network namespace this script creates and removes; the daemon runs the
 * compiled dist/ in this process, the upstream and the load generator in their own
 * (bench/dns-load.mjs), 8 clients with one query in flight each.
 *
 *   sudo npx tsx bench/dns-proxy.ts [queries=20000] [fresh names=1000]
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { isInside, rerunInNamespace } from './namespace.js';
import { median, percentile, printTable } from './stats.js';

const QUERIES = Number(process.argv[2] ?? 20_000);
const FRESH = Number(process.argv[3] ?? 1_000);
const CONCURRENCY = 8;
const PROXY_PORT = 5353;
const LOAD = fileURLToPath(new URL('./dns-load.mjs', import.meta.url));

interface Load {
  latenciesMs: number[];
  seconds: number;
  lost: number;
}

async function inside(): Promise<void> {
  const fromDist = (path: string): Promise<unknown> => import(new URL(`../dist/${path}`, import.meta.url).href);
  const { parseConfig } = (await fromDist('config/config.js')) as typeof import('../src/config/config.js');
  const { startDaemon } = (await fromDist('daemon/daemon.js')) as typeof import('../src/daemon/daemon.js');
  const { iptablesRunner } = (await fromDist('firewall/iptables.js')) as typeof import('../src/firewall/iptables.js');
  const { persistentIpset } = (await fromDist('firewall/ipset-runner.js')) as typeof import('../src/firewall/ipset-runner.js');
  const { nftRunner } = (await fromDist('firewall/nft/runner.js')) as typeof import('../src/firewall/nft/runner.js');

  await execa('ip', ['link', 'set', 'lo', 'up']);
  await execa('iptables', ['-N', 'DOCKER-USER']);
  await execa('iptables', ['-A', 'FORWARD', '-j', 'DOCKER-USER']);
  const upstream = execa(process.execPath, [LOAD, 'serve']);
  const dir = await mkdtemp(join(tmpdir(), 'ohn-dns-bench-'));
  try {
    const upstreamPort = await firstLine(upstream);
    const args = ['--interface', 'br0', '--listen', join(dir, 'dnstap.sock'), '--max-ips', '100000'];
    const dns = ['--dns-listen', `127.0.0.1:${PROXY_PORT}`, '--dns-upstream', `127.0.0.1:${upstreamPort}`];
    /** A daemon on `backend` from an empty kernel, its runners closed after `measure`. */
    const withDaemon = async (backend: string, patterns: string[], measure: () => Promise<void>) => {
      await execa('iptables', ['-F', 'DOCKER-USER']);
      await execa('iptables', ['-A', 'DOCKER-USER', '-j', 'RETURN']);
      const runner = iptablesRunner({ persistent: true });
      const ipset = persistentIpset();
      const nft = nftRunner({ persistent: true });
      const config = parseConfig([...args, '--backend', backend, ...dns, ...patterns], {});
      const daemon = await startDaemon(config, { runner, ipset: () => ipset, nft: () => nft, log: pino({ level: 'silent' }) });
      try {
        await measure();
      } finally {
        await daemon.close();
        for (const r of [runner, ipset, nft]) r.close?.();
      }
    };
    const rows: string[][] = [];
    // Fresh names from FRESH on: their addresses are none of the open names' (dns-load.mjs numbers them), nor each other's.
    await withDaemon('iptables', ['open*.test.', 'fresh*.test.'], async () => {
      rows.push(row('directly to the upstream (no on-his-name)', await load(Number(upstreamPort), 'denied', 1000, QUERIES)));
      rows.push(row('through on-his-name, denied names (passed through)', await load(PROXY_PORT, 'denied', 1000, QUERIES)));
      await load(PROXY_PORT, 'open', 100, 100); // open them once
      rows.push(row('through on-his-name, allowed names already open (100 names)', await load(PROXY_PORT, 'open', 100, QUERIES)));
      rows.push(row(`through on-his-name --backend iptables, ${FRESH} fresh allowed names (each held until its rules are in)`, await load(PROXY_PORT, 'fresh', FRESH, FRESH, FRESH)));
    });
    await withDaemon('ipset', ['fresh*.test.'], async () => {
      rows.push(row(`through on-his-name --backend ipset, ${FRESH} other fresh allowed names`, await load(PROXY_PORT, 'fresh', FRESH, FRESH, 2 * FRESH)));
    });
    await withDaemon('nftables', ['fresh*.test.'], async () => {
      rows.push(row(`through on-his-name --backend nftables, ${FRESH} other fresh allowed names`, await load(PROXY_PORT, 'fresh', FRESH, FRESH, 3 * FRESH)));
    });
    printTable(['queries', 'answered/s', 'p50', 'p99', 'max', 'lost'], rows);
  } finally {
    upstream.kill();
    await upstream.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function firstLine(child: ResultPromise): Promise<string> {
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.catch(reject);
  });
}

/** `offset` numbers the names from there, so that a second round asks names never asked before. */
async function load(port: number, prefix: string, names: number, queries: number, offset = 0): Promise<Load> {
  const { stdout } = await execa(process.execPath, [LOAD, 'load', String(port), prefix, String(names), String(queries), String(CONCURRENCY), String(offset)]);
  return JSON.parse(stdout) as Load;
}

function row(what: string, { latenciesMs, seconds, lost }: Load): string[] {
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  return [what, Math.round(latenciesMs.length / seconds).toLocaleString('en'), ms(median(latenciesMs)), ms(percentile(latenciesMs, 99)), ms(Math.max(...latenciesMs)), String(lost)];
}

async function main(): Promise<void> {
  if (isInside()) return inside();
  await rerunInNamespace('ohn-dnsb', import.meta.url, [String(QUERIES), String(FRESH)]);
}

await main();
