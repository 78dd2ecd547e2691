/**
 * A hostile container tries to stall the inline proxy for everyone else (issue item 6):
 * - a flood of UDP queries for names the upstream never answers, to fill every slot that
 *   waits for the upstream: the other container's lookups must still be answered;
 * - hundreds of TCP connections that trickle a byte every two seconds, to hold every
 *   connection the proxy serves: the other container must still get its TCP answer;
 * - with --dns-hold-ms 0 every allowed answer is released before its rules, and the
 *   warning about it must be a few summary lines, not one per answer.
 * The backend plays no part here: the default one runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BACKEND } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY } from '../lab/firewall-lab.js';
import { startFakeDns } from '../lab/fake-dns.js';
import { SCRIPTS } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { startInNamespace, type Line } from '../lab/ns-process.js';
import type { ZoneRecord } from '../lab/unbound.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const UPSTREAM = { host: '127.0.0.1', port: 5300 };
/** More queries than the proxy's 4,096 slots, paced so that the kernel's receive buffer drops none. */
const FLOOD = { count: 6_000, perMs: 6 };
/** More connections than the proxy's 512. */
const TRICKLERS = 600;
const FRESH = 60;
const fresh: ZoneRecord[] = Array.from({ length: FRESH }, (_, i) => ({ name: `fresh${i}`, type: 'A', value: `198.51.100.${100 + i}` }));
const RELEASED = 'released a DNS answer before its rules reached the kernel';
/** Lines a summarised warning writes in full before it counts (hold.ts). */
const SUMMARY_BURST = 5;

describe.skipIf(!canUseNamespaces())(`a container stalling the inline proxy for the others${skipNote()}`, () => {
  let hostile: HostileLab;
  const backend = DEFAULT_BACKEND;
  const inline = ['--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`, '--dns-timeout-ms', '10000'];

  beforeAll(async () => {
    hostile = await createHostileLab();
    hostile.track(await startFakeDns(hostile.lab.host, { listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: [...DEFAULT_RECORDS, ...fresh], silent: '^stall' }));
  }, 60_000);

  printOnFailure(async () => firewallReport(await hostile.lab.rules(), hostile.daemon?.output().slice(-20_000)));

  afterAll(async () => {
    await hostile?.close();
  });

  it("a flood of queries the upstream never answers does not fail the other container's lookups", async () => {
    await hostile.start([...backend.args, ...inline, 'allowed.test.']);
    const flood = hostile.track(startInNamespace(hostile.lab.containers[0]!, [process.execPath, SCRIPTS.dnsFlood, GATEWAY, String(FLOOD.count), String(FLOOD.perMs), 'stall']));
    // Saturated: every query sent, and the proxy already turns the flooder's extra ones away.
    const saturated = await flood.waitForLine((line: Line) => line.done === true && Number(line.servfail) > 0, 30_000, 'the flood sent and turned away');
    const status = await hostile.lab.containers[1]!.exec('sh', ['-c', `dig +time=10 +tries=1 @${GATEWAY} allowed.test | grep -Eo 'status: [A-Z]+|^allowed.test.*' || true`]);
    console.info(`flood from container 0: ${JSON.stringify(saturated)}; container 1 got: ${status.trim().replace(/\s+/g, ' ')}`);
    expect(status).toMatch(/status: NOERROR/);
    expect(status).toMatch(/198\.51\.100\.10/);
    await flood.stop();
  }, 60_000);

  it('hundreds of TCP connections trickling bytes from one container do not keep the other from asking over TCP', async () => {
    await hostile.start([...backend.args, ...inline, 'allowed.test.']);
    const trickle = hostile.track(startInNamespace(hostile.lab.containers[0]!, [process.execPath, SCRIPTS.tcpTrickle, GATEWAY, String(TRICKLERS)]));
    const settled = await trickle.waitForLine((line: Line) => line.settled === true, 30_000, 'every connection established or refused');
    // Container 1's connection queues behind all of container 0's: the proxy has judged every one of those first.
    const answer = await hostile.lab.containers[1]!.exec('sh', ['-c', `dig +tcp +short +time=10 +tries=1 @${GATEWAY} allowed.test 2>&1 || true`]);
    console.info(`${TRICKLERS} trickling connections from container 0: ${JSON.stringify(settled)}, then ${JSON.stringify(trickle.lines.at(-1))}; container 1 over TCP got: ${answer.trim()}`);
    expect(answer.trim()).toBe('198.51.100.10');
    await trickle.stop();
  }, 60_000);

  it('with --dns-hold-ms 0, the warning about answers released before their rules is a few summary lines', async () => {
    const daemon = await hostile.start([...backend.args, ...inline, '--dns-hold-ms', '0', 'fresh*.test.']);
    // All at once, each into its own file: the answers' rules go in as one or two batches, which no answer waits for.
    const script = `d=$(mktemp -d); ${fresh.map((r) => `dig +short +time=10 +tries=1 @${GATEWAY} ${r.name}.test > $d/${r.name} &`).join(' ')} wait; ${fresh.map((r) => `cat $d/${r.name}`).join('; ')}; rm -r $d`;
    const started = performance.now();
    const answers = (await hostile.lab.containers[0]!.exec('sh', ['-c', script])).trim().split('\n');
    const seconds = Math.ceil((performance.now() - started) / 1000);
    expect(answers).toEqual(fresh.map((r) => r.value));
    await hostile.stopDaemon(); // the summary of what it held back is written at stop
    const warnings = daemon.lines.filter((line) => line.msg.startsWith(RELEASED));
    const counted = warnings.reduce((sum, line) => sum + (typeof line.repeated === 'number' ? line.repeated : 1), 0);
    console.info(`--dns-hold-ms 0, ${FRESH} fresh names in ${seconds} s: ${warnings.length} warning lines for ${counted} answers released early`);
    // A few lines in full, then one summary a second and one at stop: enough answers went early to tell that from a line each.
    const summarised = SUMMARY_BURST + seconds + 2;
    expect(counted).toBe(warnings.at(-1)!.releasedEarly);
    expect(counted).toBeGreaterThan(summarised);
    expect(warnings.length).toBeLessThanOrEqual(summarised);
  }, 60_000);
});
