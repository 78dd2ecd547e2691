/**
 * What expiry and reconcile cost on real iptables (nf_tables), in a namespace this script
 * creates and removes: with N addresses open (2 rules each), the time of a reconcile that
 * finds nothing to do (it runs every --reconcile-interval), of restoring everything after
 * a flush, of refreshing every address at once, and of expiring every address at once,
 * through the Firewall as the daemon runs it. Every iptables-restore is timed: the slowest
 * one of the expiry (the removal batch that held the firewall longest) and how many it
 * took are reported with the total.
 *
 *   sudo npx tsx bench/expiry.ts [addresses=5000] [reconciles=5] [--no-refresh]
 *
 * It builds its layout inline and uses nothing but Firewall and iptablesRunner, so the same
 * file also runs in an older checkout, to compare.
 */
import { execa } from 'execa';
import { pino } from 'pino';
import { Firewall } from '../src/firewall/firewall.js';
import { iptablesRunner, type IptablesRunner } from '../src/firewall/iptables.js';
import { median, printTable } from './stats.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const SIZES = (args[0] ?? '5000').split(',').map(Number);
const RECONCILES = Number(args[1] ?? 5);
const REFRESH = !process.argv.includes('--no-refresh');
const NS = `ohn-bench-exp-${process.pid}`;
const log = pino({ level: 'silent' });
const LAYOUT = { bridge: 'br-bench', ports: [{ protocol: 'tcp' as const, port: 80 }, { protocol: 'tcp' as const, port: 443 }], subnets: ['192.0.2.0/24'], dns: [{ address: '192.0.2.1', port: 53 }], hostPorts: [] };

function address(i: number): string {
  return `198.18.${(i >> 8) & 255}.${i & 255}`;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** The runner, with every restore's duration written to `restores` while it is set. */
function timedRunner(runner: IptablesRunner): { runner: IptablesRunner; record(into: number[] | undefined): void } {
  let restores: number[] | undefined;
  return {
    runner: {
      ...runner,
      list: () => runner.list(),
      async restore(script) {
        const started = performance.now();
        await runner.restore(script);
        restores?.push(performance.now() - started);
      },
    },
    record: (into) => (restores = into),
  };
}

async function measure(size: number): Promise<string[]> {
  const iptables = (...a: string[]) => execa('ip', ['netns', 'exec', NS, 'iptables', ...a]);
  await iptables('-F', 'DOCKER-USER');
  await iptables('-A', 'DOCKER-USER', '-j', 'RETURN');
  const clock = { now: 1_764_000_000 };
  const { runner, record } = timedRunner(iptablesRunner({ prefix: ['ip', 'netns', 'exec', NS] }));
  const firewall = new Firewall({ runner, layout: LAYOUT, log, clock: () => clock.now, minTtl: 60, ttlGrace: 60, maxIps: size });
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
  const refresh = REFRESH
    ? await timed(async () => {
        for (let i = 0; i < size; i++) firewall.allow(address(i), `host${i}.bench.`, 60);
        await firewall.settled();
      })
    : undefined;
  clock.now += 1_000;
  const batches: number[] = [];
  record(batches);
  const expire = await timed(async () => {
    firewall.expire();
    await firewall.settled();
  });
  record(undefined);
  firewall.stop();
  const left = (await iptables('-S', 'DOCKER-USER')).stdout.split('\n').filter((l) => l.includes('-j ACCEPT')).length;
  if (left !== 0 || firewall.stats.restored !== 1) throw new Error(`expected every rule gone and one restore (left ${left})`);
  const ms = (value: number | undefined) => (value === undefined ? '–' : `${Math.round(value).toLocaleString('en')} ms`);
  return [
    size.toLocaleString('en'),
    (size * 2).toLocaleString('en'),
    ms(open),
    ms(median(idle)),
    ms(restore),
    ms(refresh),
    ms(expire),
    String(batches.length),
    ms(Math.max(...batches)),
  ];
}

await execa('ip', ['netns', 'add', NS]);
try {
  await execa('ip', ['netns', 'exec', NS, 'iptables', '-N', 'DOCKER-USER']);
  await execa('ip', ['netns', 'exec', NS, 'iptables', '-I', 'FORWARD', '-j', 'DOCKER-USER']);
  const rows: string[][] = [];
  for (const size of SIZES) rows.push(await measure(size));
  printTable(
    ['addresses', 'rules', 'open all', 'reconcile, nothing to do (median)', 'reconcile after a flush', 'refresh all', 'expire all', 'removal batches', 'slowest batch'],
    rows,
  );
} finally {
  await execa('ip', ['netns', 'del', NS]);
}
