/**
 * What expiry and reconcile cost on real iptables (nf_tables), in a namespace this script
 * creates and removes: with N addresses open (2 rules each), the time of a reconcile that
 * finds nothing to do (it runs every --reconcile-interval), of restoring everything after
 * a flush, of refreshing every address at once, and of expiring every address at once
 * (batches of up to 2,048 addresses, one iptables-restore each).
 *
 *   sudo npx tsx bench/expiry.ts [addresses=1000,10000] [reconciles=5]
 */
import { execa } from 'execa';
import { pino } from 'pino';
import { Firewall } from '../src/firewall/firewall.js';
import { iptablesRunner } from '../src/firewall/iptables.js';
import { median, printTable } from './stats.js';
import { testLayout } from '../test/support/layout.js';

const SIZES = (process.argv[2] ?? '1000,10000').split(',').map(Number);
const RECONCILES = Number(process.argv[3] ?? 5);
const NS = `ohn-bench-exp-${process.pid}`;
const log = pino({ level: 'silent' });

function address(i: number): string {
  return `198.18.${(i >> 8) & 255}.${i & 255}`;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

async function measure(size: number): Promise<string[]> {
  const iptables = (...args: string[]) => execa('ip', ['netns', 'exec', NS, 'iptables', ...args]);
  await iptables('-F', 'DOCKER-USER');
  await iptables('-A', 'DOCKER-USER', '-j', 'RETURN');
  const clock = { now: 1_764_000_000 };
  const firewall = new Firewall({
    runner: iptablesRunner({ prefix: ['ip', 'netns', 'exec', NS] }),
    layout: testLayout('br-bench'),
    log,
    clock: () => clock.now,
    minTtl: 60,
    ttlGrace: 60,
    maxIps: size,
  });
  await firewall.start();
  const open = await timed(async () => {
    for (let i = 0; i < size; i++) firewall.allow(address(i), `host${i}.bench.`, 60);
    await firewall.settled();
  });
  const idle: number[] = [];
  for (let i = 0; i < RECONCILES; i++) idle.push(await timed(() => firewall.reconcile()));
  await iptables('-F', 'DOCKER-USER');
  const restore = await timed(() => firewall.reconcile());
  clock.now += 60;
  const refresh = await timed(async () => {
    for (let i = 0; i < size; i++) firewall.allow(address(i), `host${i}.bench.`, 60);
    await firewall.settled();
  });
  clock.now += 1_000;
  const expire = await timed(async () => {
    firewall.expire();
    await firewall.settled();
  });
  firewall.stop();
  const left = (await iptables('-S', 'DOCKER-USER')).stdout.split('\n').filter((l) => l.includes('-j ACCEPT')).length;
  if (left !== 0 || firewall.stats.restored !== 1) throw new Error(`expected every rule gone and one restore (left ${left})`);
  const ms = (value: number) => `${Math.round(value)} ms`;
  return [size.toLocaleString('en'), (size * 2).toLocaleString('en'), ms(open), ms(median(idle)), ms(restore), ms(refresh), ms(expire)];
}

await execa('ip', ['netns', 'add', NS]);
try {
  await execa('ip', ['netns', 'exec', NS, 'iptables', '-N', 'DOCKER-USER']);
  // As on a Docker host: the Firewall refuses a DOCKER-USER that nothing jumps to.
  await execa('ip', ['netns', 'exec', NS, 'iptables', '-A', 'FORWARD', '-j', 'DOCKER-USER']);
  const rows: string[][] = [];
  for (const size of SIZES) rows.push(await measure(size));
  printTable(['addresses', 'rules', 'open all', 'reconcile, nothing to do (median)', 'reconcile after a flush', 'refresh all', 'expire all'], rows);
} finally {
  await execa('ip', ['netns', 'del', NS]);
}
