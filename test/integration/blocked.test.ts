/**
 * What is blocked (issue 16) in the firewall lab, enforcing, with the real CLI, unbound's
 * dnstap and real connections, on each backend. Two clients share the bridge:
 *
 *   container 0  192.0.2.10  the default policy: allowed.test on TCP 443
 *   container 1  192.0.2.11  policy web (a file range): web.test on TCP 80
 *
 * The daemon drains the kernel's record every second (--blocked-interval 1) and the
 * suites read what it made of it through the admin API, from inside the lab's host
 * namespace. An attempt is "blocked" when the drop counter at the end of the client's
 * policy moved; its SYNs are counted by the container's own kernel (TCPSynRetrans), so
 * the view's count is checked against what was really sent, not against a guess. The
 * record is drained by a read and then a flush: a packet landing between the two is
 * dropped as ever but uncounted, so a count may be one short of the SYNs, never more.
 */
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { BlockedListView, HealthView } from '../../src/admin/api.js';
import { BLOCKED_SET_SIZE } from '../../src/firewall/blocked.js';
import { MAX_BLOCKED } from '../../src/blocked/view.js';
import { ADMIN_PORT, adminOf, attemptsOf, blockedKernel, synRetransmitsIn, type Admin } from '../lab/blocked.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { probe } from '../lab/hostile.js';
import { pollUntil, startInNamespace } from '../lab/ns-process.js';
import { DEFAULT_CLIENT, DEFAULT_POLICY, POLICY_BACKENDS, unavailable, WEB_CLIENT, type LabClient } from '../lab/policy-backends.js';
import { unboundUid } from '../lab/unbound.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const SPRAY = fileURLToPath(new URL('../lab/udp-spray.mjs', import.meta.url));
const ADDRESS = {
  allowed: '198.51.100.10',
  web: '198.51.100.11',
  hardCoded: '198.51.100.12',
  other: '198.51.100.13',
  denied: '203.0.113.10',
  one: '203.0.113.11',
  two: '203.0.113.12',
} as const;
const RECORDS = [
  { name: 'allowed', type: 'A' as const, value: ADDRESS.allowed },
  { name: 'web', type: 'A' as const, value: ADDRESS.web },
  { name: 'other', type: 'A' as const, value: ADDRESS.other },
  { name: 'denied', type: 'A' as const, value: ADDRESS.denied },
  { name: 'one.sib', type: 'A' as const, value: ADDRESS.one },
  { name: 'two.sib', type: 'A' as const, value: ADDRESS.two },
];
const POLICY_FILE = `# blocked.test.ts\n${stringify({
  allow: ['allowed.test.'],
  ports: [443],
  policies: { web: { allow: ['web.test.'], ports: [80], clients: [`${WEB_CLIENT.address}/32`] } },
})}`;
/** Long enough for the first SYN and one retransmit (the kernel's first RTO is 1 s). */
const ATTEMPT_MS = 2_500;

describe.skipIf(!canUseNamespaces()).each(POLICY_BACKENDS)(`what is blocked, enforcing, --backend $name${skipNote()}`, (backend) => {
  let dir: string;
  let socket: string;
  let file: string;
  let lab: FirewallLab;
  let daemon: CliProcess | undefined;
  let admin: Admin;
  const kernel = blockedKernel(backend);
  const host = () => lab.host;

  const start = async (env: Record<string, string> = {}) => {
    daemon = startCli(
      lab.host.name,
      [
        '--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--policy', file,
        '--admin-listen', String(ADMIN_PORT), '--blocked-interval', '1', '--log-level', 'debug', ...backend.args,
      ],
      env,
    );
    await daemon.waitFor((l) => l.msg === 'on-his-name is running', 20_000);
    await daemon.waitFor((l) => l.msg === 'producer connected', 20_000);
  };
  /** `name` asked from `client` is denied by its policy: the daemon says so. */
  const denied = async (client: LabClient, name: string, address: string) => {
    const from = daemon!.lines.length;
    expect(await lab.resolve(name, { from: client.index })).toEqual([address]);
    await daemon!.waitFor((l) => daemon!.lines.indexOf(l) >= from && l.msg === 'deny' && l.name === `${name}.` && l.client === client.address);
  };
  /**
   * A real TCP attempt (curl) from `client` that its policy drops: the SYNs its kernel sent
   * (the first and its retransmits) and the packets the policy's drop counted meanwhile.
   */
  const attempt = async (client: LabClient, address: string, port: number) => {
    const ns = lab.containers[client.index]!;
    const [retransmits, drops] = [await synRetransmitsIn(ns), await backend.drops(host(), client.policy)];
    expect(await lab.connect(address, port, { from: client.index, timeoutMs: ATTEMPT_MS })).toBe(false);
    return { syns: 1 + (await synRetransmitsIn(ns)) - retransmits, dropped: (await backend.drops(host(), client.policy)) - drops };
  };
  /** The view once it holds `atLeast` packets for the destination (or, a packet lost to the drain's race, after 5 s). */
  const recorded = async (client: LabClient, address: string, port: number, atLeast: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const view = await admin.blocked();
      const [entry] = attemptsOf(view, client.address, address, port, protocol);
      if ((entry && entry.count >= atLeast) || Date.now() > deadline) return view;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const blockedLines = (client: LabClient, address: string, port: number) =>
    daemon!.lines.filter((l) => l.msg === 'blocked' && l.client === client.address && l.address === address && l.port === port);

  beforeAll(async () => {
    const missing = await unavailable(backend);
    if (missing) throw new Error(missing);
    dir = await mkdtemp(join(tmpdir(), 'ohn-blocked-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    file = join(dir, 'policy.yaml');
    await writeFile(file, POLICY_FILE);
    lab = await createFirewallLab({ dnstapSocket: socket, records: RECORDS, hostFirewall: backend.hostFirewall, startDns: true });
    admin = adminOf(lab);
    await start();
  }, 90_000);

  printOnFailure(async () => `${await backend.show(host())}\n\ndaemon log:\n${daemon?.output() ?? '(no daemon)'}`);

  afterAll(async () => {
    await daemon?.stop();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts with the blocked view on and empty', async () => {
    expect(daemon!.lines.find((l) => l.msg === 'on-his-name is running')).toMatchObject({ blockedView: 'read every 1 s' });
    expect(await admin.blocked()).toEqual({ enabled: true, blocked: [], bound: MAX_BLOCKED });
    expect(await kernel.record(host())).toEqual({ elements: 0, bound: BLOCKED_SET_SIZE });
    expect(await admin.json<HealthView>('/healthz')).toMatchObject({ status: 'ok', mode: 'enforcing', warnings: [] });
  });

  it('a denied name, then a connection to its address: recorded with the client, its policy, the port, the name and every SYN, and said once', async () => {
    await denied(DEFAULT_CLIENT, 'denied.test', ADDRESS.denied);
    const { syns, dropped } = await attempt(DEFAULT_CLIENT, ADDRESS.denied, 443);
    expect(syns).toBeGreaterThanOrEqual(2); // the first SYN and at least one retransmit
    expect(dropped).toBe(syns);
    const entries = attemptsOf(await recorded(DEFAULT_CLIENT, ADDRESS.denied, 443, syns), DEFAULT_CLIENT.address, ADDRESS.denied, 443);
    expect(entries).toEqual([
      expect.objectContaining({ client: DEFAULT_CLIENT.address, container: null, policy: DEFAULT_POLICY, audit: false, protocol: 'tcp', name: 'denied.test.', nameAllowed: false }),
    ]);
    expect(entries[0]!.count).toBeGreaterThanOrEqual(syns - 1);
    expect(entries[0]!.count).toBeLessThanOrEqual(syns);
    expect(Date.parse(entries[0]!.lastSeen)).toBeGreaterThanOrEqual(Date.parse(entries[0]!.firstSeen));
    // One line for the new destination, however many packets and reads it took.
    expect(blockedLines(DEFAULT_CLIENT, ADDRESS.denied, 443)).toEqual([
      expect.objectContaining({ level: 30, component: 'blocked', policy: DEFAULT_POLICY, protocol: 'tcp', name: 'denied.test.', nameAllowed: false, container: null }),
    ]);
    // A second attempt adds to the same entry, and says nothing more.
    const again = await attempt(DEFAULT_CLIENT, ADDRESS.denied, 443);
    const total = entries[0]!.count + again.syns;
    const [entry] = attemptsOf(await recorded(DEFAULT_CLIENT, ADDRESS.denied, 443, total), DEFAULT_CLIENT.address, ADDRESS.denied, 443);
    expect(entry!.count).toBeGreaterThanOrEqual(total - 1);
    expect(entry!.count).toBeLessThanOrEqual(total);
    expect(blockedLines(DEFAULT_CLIENT, ADDRESS.denied, 443)).toHaveLength(1);
    console.info(`--backend ${backend.name}: ${syns} + ${again.syns} SYNs sent and dropped, ${entry!.count} recorded`);
  }, 30_000);

  it("a hard-coded address from the other policy's client: recorded under that policy, with no name", async () => {
    const { syns, dropped } = await attempt(WEB_CLIENT, ADDRESS.hardCoded, 80);
    expect(dropped).toBe(syns);
    const entries = attemptsOf(await recorded(WEB_CLIENT, ADDRESS.hardCoded, 80, syns), WEB_CLIENT.address, ADDRESS.hardCoded, 80);
    expect(entries).toEqual([expect.objectContaining({ policy: 'web', audit: false, protocol: 'tcp', name: null, nameAllowed: null })]);
    expect(entries[0]!.count).toBeGreaterThanOrEqual(syns - 1);
    expect(entries[0]!.count).toBeLessThanOrEqual(syns);
    // A destination no answer names is said once the answer had time to come (NAME_GRACE_MS).
    await daemon!.waitFor((l) => blockedLines(WEB_CLIENT, ADDRESS.hardCoded, 80).includes(l));
    expect(blockedLines(WEB_CLIENT, ADDRESS.hardCoded, 80)).toEqual([expect.objectContaining({ policy: 'web', name: null })]);
    // Most recent first.
    expect((await admin.blocked()).blocked.map((b) => b.address)).toEqual([ADDRESS.hardCoded, ADDRESS.denied]);
  }, 30_000);

  it('on-his-name status shows both in its BLOCKED table, most recent first', async () => {
    const view = await admin.blocked();
    const result = await admin.cli('status');
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    const head = lines.findIndex((l) => /^BLOCKED\s+CLIENT\s+CONTAINER\s+POLICY\s+DESTINATION\s+PORT\s+NAME\s+COUNT$/.test(l));
    expect(head, result.stdout).toBeGreaterThanOrEqual(0);
    const rows = lines.slice(head + 1, head + 3).map((l) => l.split(/\s{2,}/));
    expect(rows.map((r) => r.slice(1))).toEqual([
      [WEB_CLIENT.address, '-', 'web', ADDRESS.hardCoded, 'tcp/80', 'no DNS answer: a hard-coded address', String(attemptsOf(view, WEB_CLIENT.address, ADDRESS.hardCoded, 80)[0]!.count)],
      [DEFAULT_CLIENT.address, '-', DEFAULT_POLICY, ADDRESS.denied, 'tcp/443', 'denied.test. (denied)', String(attemptsOf(view, DEFAULT_CLIENT.address, ADDRESS.denied, 443)[0]!.count)],
    ]);
    expect(rows[0]![0]).toMatch(/ ago$/);
    expect(result.stdout).not.toMatch(/AUDIT/);
    console.info(`on-his-name status (--backend ${backend.name}):\n${result.stdout}`);
  });

  it('/metrics counts the blocked packets by policy, and the destinations held', async () => {
    const view = await admin.blocked();
    const sum = (policy: string) => view.blocked.filter((b) => b.policy === policy).reduce((n, b) => n + b.count, 0);
    expect(await admin.metric(`on_his_name_blocked_packets_total{policy="${DEFAULT_POLICY}"}`)).toBe(sum(DEFAULT_POLICY));
    expect(await admin.metric('on_his_name_blocked_packets_total{policy="web"}')).toBe(sum('web'));
    expect(await admin.metric('on_his_name_blocked_destinations')).toBe(view.blocked.length);
  });

  it('suggest prints each denied name under its policy, two siblings as *.parent., and the hard-coded address apart', async () => {
    for (const [name, address] of [['one.sib.test', ADDRESS.one], ['two.sib.test', ADDRESS.two]] as const) {
      await denied(DEFAULT_CLIENT, name, address);
      expect(await probe(lab.containers[DEFAULT_CLIENT.index]!, { protocol: 'tcp', address, port: 443 }, () => backend.drops(host(), DEFAULT_POLICY))).toBe('dropped');
    }
    await denied(WEB_CLIENT, 'other.test', ADDRESS.other);
    expect(await probe(lab.containers[WEB_CLIENT.index]!, { protocol: 'tcp', address: ADDRESS.other, port: 80 }, () => backend.drops(host(), 'web'))).toBe('dropped');
    await pollUntil(
      () => admin.blocked(),
      (view) => [ADDRESS.one, ADDRESS.two, ADDRESS.other].every((address) => view.blocked.some((b) => b.address === address)),
      10_000,
      'the three attempts in /api/blocked',
      100,
    );

    const result = await admin.cli('suggest');
    expect(result.exitCode, result.stderr).toBe(0);
    const out = result.stdout;
    console.info(`on-his-name suggest (--backend ${backend.name}):\n${out}`);
    const at = (text: string) => {
      const i = out.indexOf(text);
      expect(i, `"${text}" in:\n${out}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    // The default policy is the file's top level: its allow list comes before `policies:`.
    const top = at("# The default policy (every client without a policy of its own): the file's top level.\nallow:\n");
    const policies = at('\npolicies:\n  web:\n    allow:\n');
    const hardCoded = at('\n# Hard-coded addresses: no DNS answer named them, so no pattern can open them.\n');
    expect(top).toBeLessThan(policies);
    expect(policies).toBeLessThan(hardCoded);
    const defaultPart = out.slice(top, policies);
    const webPart = out.slice(policies, hardCoded);
    expect(defaultPart).toMatch(/^ {2}- "\*\.sib\.test\." {2}# seen: one\.sib\.test\., two\.sib\.test\.; \d+ packets? blocked$/m);
    expect(defaultPart).toMatch(/^ {2}- "denied\.test\." {2}# \d+ packets? blocked$/m);
    expect(defaultPart).not.toContain('other.test.');
    expect(webPart).toMatch(/^ {6}- "other\.test\." {2}# \d+ packets? blocked$/m);
    expect(webPart).not.toMatch(/sib\.test|denied\.test/);
    expect(out.slice(hardCoded)).toMatch(new RegExp(`^# {3}web: ${WEB_CLIENT.address} -> ${ADDRESS.hardCoded.replace(/\./g, '\\.')} tcp/80 \\(\\d+ packets? blocked\\)$`, 'm'));
    // Nothing is proposed for a name no connection followed, nor a pattern for the hard-coded address.
    expect(out).not.toMatch(/^\s*- "[^"\n]*198\.51\.100\.12/m);
  }, 60_000);

  it('a flood of distinct blocked destinations: the view stays within its bound, the kernel set within its size, the daemon answers; a real attempt after it still appears', async () => {
    const metric = `on_his_name_blocked_packets_total{policy="${DEFAULT_POLICY}"}`;
    const before = (await admin.metric(metric))!;
    const drained = async () => (await admin.metric(metric))! - before;
    const kept = attemptsOf(await admin.blocked(), DEFAULT_CLIENT.address, ADDRESS.denied, 443)[0]!;
    const latencies: number[] = [];
    const sets: number[] = [];
    const rounds: string[] = [];
    // Rounds of 254 addresses × 100 ports, 25,400 new (client, destination, port) each, more
    // than the kernel's set holds, until more were drained than the view keeps. Under such a
    // burst the kernel records only part of a round (nftables' set grows its hash table as
    // it fills, and an update that comes while it does is not recorded), so one may not do.
    for (let round = 0; round < 4 && (await drained()) <= MAX_BLOCKED + 1_000; round++) {
      const dropsBefore = await backend.drops(host(), DEFAULT_POLICY);
      const from = await drained();
      const ports = `${20_000 + 100 * round}-${20_099 + 100 * round}`;
      const spray = startInNamespace(lab.containers[DEFAULT_CLIENT.index]!, [process.execPath, SPRAY, '203.0.113', '1-254', ports]);
      try {
        // While it floods: the API answers, the kernel's set never holds more than its size.
        while (spray.running) {
          const health = await admin.get('/healthz');
          expect(health.status).toBe(200);
          latencies.push(health.ms);
          sets.push((await kernel.record(host()))!.elements);
        }
        expect(await spray.exited).toBe(0);
      } finally {
        await spray.stop();
      }
      const { sent, ms } = spray.lines.at(-1) as { sent: number; ms: number };
      expect(sent).toBe(25_400);
      // Every datagram met the default policy's drop.
      expect((await backend.drops(host(), DEFAULT_POLICY)) - dropsBefore).toBeGreaterThanOrEqual(sent);
      // The daemon empties the set at its next read.
      await pollUntil(() => kernel.record(host()), (record) => record?.elements === 0, 5_000, 'the record drained after the flood', 100);
      rounds.push(`${sent} sent in ${ms} ms, ${(await drained()) - from} recorded`);
    }
    // ipset sums its elements per region of its hash and checks that sum lazily: it may pass maxelem by a little.
    expect(Math.max(...sets)).toBeLessThanOrEqual(backend.name === 'nftables' ? BLOCKED_SET_SIZE : BLOCKED_SET_SIZE * 1.02);
    // More distinct destinations were drained than the view keeps (each was sent one datagram).
    expect(await drained()).toBeGreaterThan(MAX_BLOCKED + 1_000);
    const view = await admin.blocked();
    expect(view.bound).toBe(MAX_BLOCKED);
    expect(view.blocked.length).toBeLessThanOrEqual(MAX_BLOCKED);
    expect(view.blocked.length).toBeGreaterThanOrEqual(MAX_BLOCKED * 0.9 - 10);
    // One datagram each, one packet each: nothing read twice.
    expect(view.blocked.filter((b) => b.port >= 20_000).every((b) => b.count === 1)).toBe(true);
    expect(await admin.metric('on_his_name_blocked_destinations')).toBe(view.blocked.length);
    // The most often blocked are kept: the real attempt of before outlives a flood of one-offs.
    expect(attemptsOf(view, DEFAULT_CLIENT.address, ADDRESS.denied, 443)).toEqual([expect.objectContaining({ count: kept.count, name: 'denied.test.' })]);
    // The log said a few lines a read and summed up the rest.
    const summaries = daemon!.lines.filter((l) => /more new blocked destinations in this read/.test(l.msg));
    expect(summaries.length).toBeGreaterThan(0);
    expect(daemon!.lines.filter((l) => l.msg === 'blocked' && Number(l.port) >= 20_000).length).toBeLessThanOrEqual(20 * (summaries.length + 2));
    // A real attempt after the flood, from the other client: recorded with its name.
    await denied(WEB_CLIENT, 'denied.test', ADDRESS.denied);
    const { syns } = await attempt(WEB_CLIENT, ADDRESS.denied, 80);
    const after = attemptsOf(await recorded(WEB_CLIENT, ADDRESS.denied, 80, syns), WEB_CLIENT.address, ADDRESS.denied, 80);
    expect(after).toEqual([expect.objectContaining({ policy: 'web', name: 'denied.test.', nameAllowed: false })]);
    expect(after[0]!.count).toBeGreaterThanOrEqual(syns - 1);
    expect((await admin.get('/healthz')).status).toBe(200);
    console.info(
      `flood, --backend ${backend.name}: ${rounds.length} round(s) (${rounds.join('; ')}); kernel set at most ${Math.max(...sets)} of ${BLOCKED_SET_SIZE}; ` +
        `view ${view.blocked.length} of ${MAX_BLOCKED}; /healthz during it: median ${median(latencies)} ms, max ${Math.max(...latencies)} ms`,
    );
  }, 120_000);

  // The iptables backend is the one that can run without ipset (for ipset it is the backend itself; nftables records in its own table).
  if (backend.name === 'iptables') it('without ipset the daemon still runs, says once why there is no blocked view, and still drops', async () => {
    expect(await daemon!.stop()).toBe(0);
    // Every command of /usr/sbin but ipset.
    const bin = join(dir, 'bin');
    await mkdir(bin);
    for (const name of await readdir('/usr/sbin')) if (name !== 'ipset') await symlink(join('/usr/sbin', name), join(bin, name));
    await start({ PATH: `${bin}:/usr/local/bin:/usr/bin` });
    const why = daemon!.lines.filter((l) => /^no blocked view/.test(l.msg));
    expect(why).toEqual([expect.objectContaining({ level: 40 })]);
    expect(why[0]!.msg).toBe('no blocked view: no ipset here (apt-get install ipset); blocked attempts are counted by the DROP rules only');
    expect(daemon!.lines.find((l) => l.msg === 'on-his-name is running')).toMatchObject({ blockedView: 'off' });
    expect(await admin.blocked()).toEqual({ enabled: false, blocked: [], bound: 0 } satisfies BlockedListView);
    const suggest = await admin.cli('suggest');
    expect(suggest.exitCode).toBe(1);
    expect(suggest.stderr).toMatch(/records nothing blocked/);
    // Nothing jumps to a set that is not there: the record chain is empty, and the drop still drops.
    expect(await lab.iptables('-S', 'ON-HIS-NAME-RECORD')).toBe('-N ON-HIS-NAME-RECORD');
    expect(await probe(lab.containers[DEFAULT_CLIENT.index]!, { protocol: 'tcp', address: ADDRESS.denied, port: 443 }, () => backend.drops(host(), DEFAULT_POLICY))).toBe('dropped');
    expect(daemon!.lines.filter((l) => /^no blocked view/.test(l.msg))).toHaveLength(1);
    console.info(`without ipset: ${why[0]!.msg}`);
  }, 60_000);
});

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
