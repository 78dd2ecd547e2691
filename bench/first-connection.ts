/**
 * First-connection penalty, in the Docker lab: for a name never resolved before, the time
 * from the DNS answer to a completed TCP connect, seen by curl inside a container on the
 * on-his-name network (time_connect - time_namelookup), over many fresh names. unbound,
 * like CoreDNS, reports its answers over dnstap after sending them and flushes about once
 * a second, so the first SYN often meets the DROP and TCP retransmits it a second later.
 *
 * With `connect`, CoreDNS 1.14.4+ listens (coredns/Corefile.listen) and on-his-name
 * --connect dials it; CoreDNS then writes each answer as it gives it. That mode needs
 * such a CoreDNS on the PATH: there is no stand-in producer, the figure would mean nothing.
 *
 *   sudo npx tsx bench/first-connection.ts [names=50] [push|connect]
 */
import { hasCoreDnsListen } from '../test/lab/coredns.js';
import { createDockerLab } from '../test/lab/docker-lab.js';
import { median, percentile, printTable } from './stats.js';

const NAMES = Number(process.argv[2] ?? 50);
const MODE = process.argv[3] ?? 'push';
const address = (i: number) => `198.51.100.${100 + i}`;

async function main(): Promise<void> {
  if (NAMES > 150) throw new Error('at most 150 fresh names (one documentation address each)');
  if (MODE !== 'push' && MODE !== 'connect') throw new Error(`mode "${MODE}" is not push or connect`);
  if (MODE === 'connect' && !(await hasCoreDnsListen())) {
    console.log('dnstap connect: skipped, it needs CoreDNS 1.14.4 or later (dnstap listen) on the PATH, and Debian has no CoreDNS');
    return;
  }
  const records = Array.from({ length: NAMES }, (_, i) => ({ name: `fresh${i}`, type: 'A' as const, value: address(i) }));
  const lab = await createDockerLab({ records, internetAddresses: records.map((r) => r.value), progress: (m) => process.stderr.write(`… ${m}\n`), dnstap: MODE });
  try {
    const daemon = await lab.startDaemon(['*.test.']);
    const dns = await lab.startDns();
    if (MODE === 'connect') await daemon.waitFor((l) => l.msg === 'connected to the dnstap producer', 15_000);
    else await new Promise((r) => setTimeout(r, 2000)); // let the DNS server connect to the dnstap socket
    const script = records
      .map((r) => `curl -s -o /dev/null --max-time 10 -w '${r.name} %{time_namelookup} %{time_connect} %{http_code}\\n' http://${r.name}.test/`)
      .join('; ');
    const result = await lab.run(['sh', '-c', script], { timeoutSeconds: NAMES * 10 });
    const penalties: number[] = [];
    let failed = 0;
    for (const line of result.output.split('\n')) {
      const [, lookup, connect, code] = line.trim().split(' ');
      if (code !== '200') failed++;
      else penalties.push((Number(connect) - Number(lookup)) * 1000);
    }
    const within = (ms: number) => penalties.filter((p) => p < ms).length;
    printTable(
      ['mode', 'trials', 'p50', 'p90', 'p99', 'max', 'under 100 ms (no retransmit)', '1-2 s (one retransmit)', 'over 2 s', 'failed'],
      [[
        MODE === 'connect' ? 'dnstap connect (CoreDNS dnstap listen, writes each answer at once)' : `dnstap push (${dns.kind}, flushes about once a second)`,
        String(penalties.length + failed),
        ...[50, 90, 99].map((p) => `${percentile(penalties, p).toFixed(0)} ms`),
        `${Math.max(...penalties).toFixed(0)} ms`,
        String(within(100)),
        String(within(2000) - within(1000)),
        String(penalties.length - within(2000)),
        String(failed),
      ]],
    );
    console.log(`median ${median(penalties).toFixed(0)} ms; raw (ms): ${penalties.map((p) => p.toFixed(0)).join(' ')}`);
  } finally {
    await lab.close();
  }
}

await main();
