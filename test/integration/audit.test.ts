/**
 * Audit mode (issue 16) in the firewall lab, with the real CLI, unbound's dnstap and real
 * connections, on each backend. The lab of blocked.test.ts (container 0 on the default
 * policy, TCP 443; container 1 on policy web, TCP 80), and a second "Docker network" the
 * host isolates from the first, as Docker does:
 *
 *   container 0  192.0.2.10 ─┐
 *   container 1  192.0.2.11 ─┴ ohnbr0 ── host ── ohnbr1 ── other network's container 198.18.1.10 (TCP 80)
 *                                          └─ uplink ── internet (198.51.100.0/24, 203.0.113.0/24)
 *
 *   iptables, ipset  FORWARD: -j DOCKER-USER, then -j DOCKER-ISOLATION-STAGE-1
 *                    (-i ohnbr0 ! -o ohnbr0 → STAGE-2: -o ohnbr1 DROP), as Docker's iptables backend
 *   nftables         Docker 29's docker-bridges table, its filter-FORWARD starting with a drop
 *                    of ohnbr0 → ohnbr1
 *
 * Audit mode lets through what the policy would drop, and only that: an audited packet
 * still meets Docker's isolation, which runs after DOCKER-USER. An attempt "passes" when
 * it is answered (a real HTTP exchange), and is "dropped" when the counter of the rule
 * meant to drop it moved while it was unanswered.
 */
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { HealthView } from '../../src/admin/api.js';
import { ADMIN_PORT, adminOf, attemptsOf, blockedKernel, type Admin } from '../lab/blocked.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { probe } from '../lab/hostile.js';
import { TCP_SERVER } from '../lab/internet.js';
import { Namespace, attachToBridge } from '../lab/netns.js';
import { pollUntil, startReady, type NsProcess } from '../lab/ns-process.js';
import { DEFAULT_CLIENT, DEFAULT_POLICY, POLICY_BACKENDS, unavailable, type PolicyBackend, WEB_CLIENT, type LabClient } from '../lab/policy-backends.js';
import { unboundUid } from '../lab/unbound.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const ADDRESS = {
  allowed: '198.51.100.10',
  web: '198.51.100.11',
  hardCoded: '198.51.100.12',
  denied: '203.0.113.10',
  /** The other network's container. */
  isolated: '198.18.1.10',
} as const;
const OTHER_BRIDGE = 'ohnbr1';
const RECORDS = [
  { name: 'allowed', type: 'A' as const, value: ADDRESS.allowed },
  { name: 'web', type: 'A' as const, value: ADDRESS.web },
  { name: 'denied', type: 'A' as const, value: ADDRESS.denied },
];

/** The policy file, with audit mode where asked (the top level's is the default policy's). */
function policyFile(audit: { default?: boolean; web?: boolean } = {}): string {
  const web = { allow: ['web.test.'], ports: [80], clients: [`${WEB_CLIENT.address}/32`], ...(audit.web !== undefined ? { audit: audit.web } : {}) };
  return `# audit.test.ts\n${stringify({ allow: ['allowed.test.'], ports: [443], ...(audit.default !== undefined ? { audit: audit.default } : {}), policies: { web } })}`;
}

/** Docker's isolation between two networks, after DOCKER-USER, and the counter of its drop. */
interface Isolation {
  add(host: Namespace): Promise<void>;
  remove(host: Namespace): Promise<void>;
  drops(host: Namespace): Promise<number>;
}
const iptablesIsolation: Isolation = {
  async add(host) {
    const ipt = (...args: string[]) => host.exec('iptables', args);
    await ipt('-N', 'DOCKER-ISOLATION-STAGE-1');
    await ipt('-N', 'DOCKER-ISOLATION-STAGE-2');
    await ipt('-A', 'DOCKER-ISOLATION-STAGE-1', '-i', BRIDGE, '!', '-o', BRIDGE, '-j', 'DOCKER-ISOLATION-STAGE-2');
    await ipt('-A', 'DOCKER-ISOLATION-STAGE-2', '-o', OTHER_BRIDGE, '-m', 'comment', '--comment', 'docker-isolation', '-j', 'DROP');
    // Appended: after the lab's -j DOCKER-USER at the top of FORWARD, as Docker orders them.
    await ipt('-A', 'FORWARD', '-j', 'DOCKER-ISOLATION-STAGE-1');
  },
  async remove(host) {
    await host.exec('iptables', ['-D', 'DOCKER-ISOLATION-STAGE-2', '-o', OTHER_BRIDGE, '-m', 'comment', '--comment', 'docker-isolation', '-j', 'DROP']);
  },
  async drops(host) {
    const saved = await host.exec('iptables-save', ['-c', '-t', 'filter']);
    return Number(/^\[(\d+):\d+\] -A DOCKER-ISOLATION-STAGE-2 .*docker-isolation/m.exec(saved)?.[1] ?? 0);
  },
};
const nftIsolation: Isolation = {
  async add(host) {
    await host.exec('nft', ['insert', 'rule', 'ip', 'docker-bridges', 'filter-FORWARD', 'iifname', BRIDGE, 'oifname', OTHER_BRIDGE, 'counter', 'drop', 'comment', '"docker-isolation"']);
  },
  async remove(host) {
    const listed = await host.exec('nft', ['-a', 'list', 'chain', 'ip', 'docker-bridges', 'filter-FORWARD']);
    const handle = /docker-isolation.*# handle (\d+)/.exec(listed)?.[1];
    if (handle) await host.exec('nft', ['delete', 'rule', 'ip', 'docker-bridges', 'filter-FORWARD', 'handle', handle]);
  },
  async drops(host) {
    const listed = await host.exec('nft', ['list', 'chain', 'ip', 'docker-bridges', 'filter-FORWARD']);
    return Number(/counter packets (\d+) bytes \d+ drop comment "docker-isolation"/.exec(listed)?.[1] ?? 0);
  },
};
const isolationFor = (backend: PolicyBackend) => (backend.hostFirewall === 'docker-bridges' ? nftIsolation : iptablesIsolation);

/** A policy's kernel listing with the counters that traffic passing through may move left out: what a switch of audit mode must keep, accept counters included. */
const kept = (lines: readonly string[]) => lines.slice(0, -1).map((line) => (/ACCEPT|^add |"elem"|"val"/.test(line) ? line : line.replace(/^\[\d+:\d+\] /, '')));

describe.skipIf(!canUseNamespaces()).each(POLICY_BACKENDS)(`audit mode, --backend $name${skipNote()}`, (backend) => {
  let dir: string;
  let socket: string;
  let file: string;
  let lab: FirewallLab;
  let other: Namespace | undefined;
  let server: NsProcess | undefined;
  let daemon: CliProcess | undefined;
  let admin: Admin;
  const kernel = blockedKernel(backend);
  const isolation = isolationFor(backend);
  const host = () => lab.host;

  const start = async (extra: string[] = []) => {
    daemon = startCli(lab.host.name, [
      '--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--policy', file,
      '--admin-listen', String(ADMIN_PORT), '--blocked-interval', '1', '--log-level', 'debug', ...backend.args, ...extra,
    ]);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running', 20_000);
    await daemon.waitFor((l) => l.msg === 'producer connected', 20_000);
  };
  const stop = async () => {
    expect(await daemon?.stop()).toBe(0);
    daemon = undefined;
  };
  const mark = () => {
    const from = daemon!.lines.length;
    return (match: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000) => daemon!.waitFor((line) => daemon!.lines.indexOf(line) >= from && match(line), timeoutMs);
  };
  /** Rename a new policy file over the old one, as editors do, and wait for the reload. */
  const reload = async (text: string) => {
    const next = mark();
    const temporary = join(dir, '.policy.yaml.new');
    await writeFile(temporary, text);
    await rename(temporary, file);
    await next((l) => l.msg === 'policies reloaded' && l.why === 'the file changed');
  };
  const resolve = async (client: LabClient, name: string, address: string) => expect(await lab.resolve(name, { from: client.index })).toEqual([address]);
  /** A real HTTP exchange from `client`: the server's answer, or undefined. */
  const request = (client: LabClient, address: string, port: number) => lab.request(address, port, { from: client.index, timeoutMs: 3_000 });
  /** A TCP attempt from `client`, decided by `counter` (by default its policy's verdict). */
  const reach = (client: LabClient, address: string, port: number, counter = async () => (await kernel.verdict(host(), client.policy)).packets) =>
    probe(lab.containers[client.index]!, { protocol: 'tcp', address, port }, counter);
  /**
   * The view once it holds the destination (and, with `named`, the name of its answer: the
   * dnstap of an answer can come after the connection, and a read in between).
   */
  const recorded = (client: LabClient, address: string, port: number, named = false) =>
    pollUntil(
      () => admin.blocked(),
      (view) => attemptsOf(view, client.address, address, port).some((b) => !named || b.name !== null),
      10_000,
      `${client.address} → ${address}:${port}${named ? ' with its name' : ''} in /api/blocked`,
      100,
    );
  /** The log lines said for the destination, once there is one. */
  const audited = async (client: LabClient, address: string, port: number) => {
    const said = (l: Record<string, unknown>) => l.msg === 'would block (audit)' && l.client === client.address && l.address === address && l.port === port;
    await daemon!.waitFor(said);
    return daemon!.lines.filter(said);
  };

  beforeAll(async () => {
    const missing = await unavailable(backend);
    if (missing) throw new Error(missing);
    dir = await mkdtemp(join(tmpdir(), 'ohn-audit-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    file = join(dir, 'policy.yaml');
    await writeFile(file, policyFile());
    lab = await createFirewallLab({ dnstapSocket: socket, records: RECORDS, hostFirewall: backend.hostFirewall, startDns: true });
    // The other Docker network: its bridge, one container with a web server, the isolation.
    await lab.host.createBridge(OTHER_BRIDGE, '198.18.1.1/24');
    other = await Namespace.create('ohno');
    await attachToBridge(lab.host, OTHER_BRIDGE, 'veth-o0', other);
    await other.addAddress('eth0', `${ADDRESS.isolated}/24`);
    await other.addRoute('default', '198.18.1.1');
    server = await startReady(other, TCP_SERVER, ['80']);
    await isolation.add(lab.host);
    admin = adminOf(lab);
    await start(['--audit']);
  }, 90_000);

  printOnFailure(async () => `${await backend.show(host())}\n\ndaemon log:\n${daemon?.output() ?? '(no daemon)'}`);

  afterAll(async () => {
    await daemon?.stop();
    await server?.stop();
    await other?.remove();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--audit: the start log, /healthz and on-his-name status say AUDIT MODE', async () => {
    const running = daemon!.lines.findIndex((l) => l.msg === 'on-his-name is running');
    const warning = daemon!.lines.findIndex((l) => /^AUDIT MODE: nothing is blocked/.test(l.msg));
    expect(warning).toBeGreaterThan(running);
    expect(daemon!.lines[warning]).toMatchObject({ level: 40, policies: expect.arrayContaining([DEFAULT_POLICY, 'web']) });
    const health = await admin.json<HealthView>('/healthz');
    expect(health).toMatchObject({ status: 'ok', mode: 'audit', warnings: [expect.stringMatching(/^AUDIT MODE: nothing is blocked for the clients of policies (default, web|web, default);/)] });
    const status = await admin.cli('status');
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout.split('\n')[0]).toBe(health.warnings[0]);
    expect(status.stdout).toMatch(/^web \(audit\)\s/m);
    expect(await kernel.verdict(host(), DEFAULT_POLICY)).toMatchObject({ kind: 'audit' });
    expect(await kernel.verdict(host(), 'web')).toMatchObject({ kind: 'audit' });
  });

  it('the same connections succeed, and appear in /api/blocked with audit: true; nothing is opened for them', async () => {
    const before = { default: await kernel.verdict(host(), DEFAULT_POLICY), web: await kernel.verdict(host(), 'web') };
    await resolve(DEFAULT_CLIENT, 'denied.test', ADDRESS.denied);
    expect(await request(DEFAULT_CLIENT, ADDRESS.denied, 443)).toBe(`hello from ${ADDRESS.denied}:443`);
    expect(await request(WEB_CLIENT, ADDRESS.hardCoded, 80)).toBe(`hello from ${ADDRESS.hardCoded}:80`);
    // Each went through its policy's audit verdict (the SYN; the rest of the flow is established).
    expect((await kernel.verdict(host(), DEFAULT_POLICY)).packets).toBeGreaterThan(before.default.packets);
    expect((await kernel.verdict(host(), 'web')).packets).toBeGreaterThan(before.web.packets);

    await recorded(DEFAULT_CLIENT, ADDRESS.denied, 443, true);
    const view = await recorded(WEB_CLIENT, ADDRESS.hardCoded, 80);
    expect(attemptsOf(view, DEFAULT_CLIENT.address, ADDRESS.denied, 443)).toEqual([
      expect.objectContaining({ policy: DEFAULT_POLICY, audit: true, name: 'denied.test.', nameAllowed: false, count: 1 }),
    ]);
    expect(attemptsOf(view, WEB_CLIENT.address, ADDRESS.hardCoded, 80)).toEqual([expect.objectContaining({ policy: 'web', audit: true, name: null, count: 1 })]);
    expect(await audited(DEFAULT_CLIENT, ADDRESS.denied, 443)).toEqual([expect.objectContaining({ level: 30, policy: DEFAULT_POLICY, name: 'denied.test.' })]);
    expect(await audited(WEB_CLIENT, ADDRESS.hardCoded, 80)).toEqual([expect.objectContaining({ policy: 'web', name: null })]);
    expect(daemon!.lines.filter((l) => l.msg === 'blocked')).toEqual([]);
    // Followed as in enforcing mode: a denied name opens nothing.
    expect(await backend.open(host(), DEFAULT_POLICY)).not.toContain(ADDRESS.denied);
    const status = await admin.cli('status');
    expect(status.stdout).toMatch(new RegExp(`^\\S.* ago \\(audit\\)\\s+${DEFAULT_CLIENT.address}\\s+-\\s+default\\s+${ADDRESS.denied.replace(/\./g, '\\.')}\\s+tcp/443\\s+denied\\.test\\. \\(denied\\)\\s+1$`, 'm'));
  }, 30_000);

  it("an audited packet still meets Docker's isolation after DOCKER-USER, from either policy", async () => {
    for (const client of [DEFAULT_CLIENT, WEB_CLIENT]) {
      const verdict = (await kernel.verdict(host(), client.policy)).packets;
      expect(await reach(client, ADDRESS.isolated, 80, () => isolation.drops(host()))).toBe('dropped');
      // It went through the audit verdict first: recorded as audited, then dropped by Docker's rule.
      expect((await kernel.verdict(host(), client.policy)).packets).toBeGreaterThan(verdict);
      expect(attemptsOf(await recorded(client, ADDRESS.isolated, 80), client.address, ADDRESS.isolated, 80)).toEqual([expect.objectContaining({ policy: client.policy, audit: true })]);
    }
    // Without the isolation, nothing else stops it: the isolation was what dropped it.
    await isolation.remove(host());
    try {
      expect(await request(DEFAULT_CLIENT, ADDRESS.isolated, 80)).toBe(`hello from ${ADDRESS.isolated}:80`);
    } finally {
      await isolation.add(host()).catch(async () => {
        // iptables: the chains are there already; only the rule goes back.
        await host().exec('iptables', ['-A', 'DOCKER-ISOLATION-STAGE-2', '-o', OTHER_BRIDGE, '-m', 'comment', '--comment', 'docker-isolation', '-j', 'DROP']);
      });
    }
  }, 60_000);

  it("per policy from the file: web's client passes and is recorded once under web; the default client stays blocked", async () => {
    // What the kernel recorded before the restart is drained first: a record left in the set
    // would be read by the next daemon, and judged by the policies it has then.
    await pollUntil(() => kernel.record(host()), (record) => record?.elements === 0, 5_000, 'the record drained');
    await stop();
    await writeFile(file, policyFile({ web: true }));
    await start();
    const health = await admin.json<HealthView>('/healthz');
    expect(health).toMatchObject({ mode: 'mixed', warnings: [expect.stringMatching(/^AUDIT MODE: nothing is blocked for the clients of policy web;/)] });
    expect(daemon!.lines.find((l) => /^AUDIT MODE/.test(l.msg))).toMatchObject({ level: 40, policies: ['web'] });
    expect(await kernel.verdict(host(), DEFAULT_POLICY)).toMatchObject({ kind: 'drop' });
    expect(await kernel.verdict(host(), 'web')).toMatchObject({ kind: 'audit' });

    const defaultDrops = (await kernel.verdict(host(), DEFAULT_POLICY)).packets;
    await resolve(WEB_CLIENT, 'denied.test', ADDRESS.denied);
    expect(await request(WEB_CLIENT, ADDRESS.denied, 80)).toBe(`hello from ${ADDRESS.denied}:80`);
    const view = await recorded(WEB_CLIENT, ADDRESS.denied, 80, true);
    // Once, under its own policy: not also under the default one's record or drop.
    expect(attemptsOf(view, WEB_CLIENT.address, ADDRESS.denied, 80)).toEqual([expect.objectContaining({ policy: 'web', audit: true, name: 'denied.test.', count: 1 })]);
    expect(view.blocked.filter((b) => b.policy === DEFAULT_POLICY)).toEqual([]);
    expect(await admin.metric('on_his_name_blocked_packets_total{policy="web"}')).toBe(1);
    expect(await admin.metric(`on_his_name_blocked_packets_total{policy="${DEFAULT_POLICY}"}`)).toBeUndefined();
    expect((await kernel.verdict(host(), DEFAULT_POLICY)).packets).toBe(defaultDrops);

    await resolve(DEFAULT_CLIENT, 'denied.test', ADDRESS.denied);
    expect(await reach(DEFAULT_CLIENT, ADDRESS.denied, 443)).toBe('dropped');
    expect(attemptsOf(await recorded(DEFAULT_CLIENT, ADDRESS.denied, 443, true), DEFAULT_CLIENT.address, ADDRESS.denied, 443)).toEqual([
      expect.objectContaining({ policy: DEFAULT_POLICY, audit: false, name: 'denied.test.' }),
    ]);
  }, 60_000);

  it("a reload that turns web's audit off changes only its last rule, accept counters and all; the next attempt is blocked", async () => {
    await resolve(WEB_CLIENT, 'web.test', ADDRESS.web);
    await pollUntil(() => backend.open(host(), 'web'), (open) => open.has(ADDRESS.web), 10_000, `${ADDRESS.web} open for web`);
    expect(await request(WEB_CLIENT, ADDRESS.web, 80)).toBe(`hello from ${ADDRESS.web}:80`);
    const before = await kernel.policyRules(host(), 'web');
    // The accept counted the connection: a rewrite of the chain would show as a reset counter.
    expect(before.join('\n')).toMatch(backend.name === 'nftables' ? /"packets": ?[1-9]/ : /^(\[[1-9]\d*:\d+\] .*ACCEPT|add .* packets [1-9])/m);

    await reload(policyFile({ web: false }));
    const after = await kernel.policyRules(host(), 'web');
    expect(kept(after)).toEqual(kept(before));
    expect(after.at(-1)).not.toEqual(before.at(-1));
    expect(await kernel.verdict(host(), 'web')).toMatchObject({ kind: 'drop' });
    expect(daemon!.lines.find((l) => l.msg === 'policy web now enforces')).toMatchObject({ level: 40 });
    expect(await admin.json<HealthView>('/healthz')).toMatchObject({ mode: 'enforcing', warnings: [] });

    expect(await reach(WEB_CLIENT, ADDRESS.denied, 80)).toBe('dropped');
    expect(await request(WEB_CLIENT, ADDRESS.web, 80)).toBe(`hello from ${ADDRESS.web}:80`);
    console.info(`--backend ${backend.name}, policy web, audit off by reload:\n- ${before.at(-1)}\n+ ${after.at(-1)}`);
  }, 60_000);

  it("a reload that turns the default policy's audit on and off changes only DOCKER-USER's (or its chain's) last rule", async () => {
    await resolve(DEFAULT_CLIENT, 'allowed.test', ADDRESS.allowed);
    await pollUntil(() => backend.open(host(), DEFAULT_POLICY), (open) => open.has(ADDRESS.allowed), 10_000, `${ADDRESS.allowed} open`);
    expect(await request(DEFAULT_CLIENT, ADDRESS.allowed, 443)).toBe(`hello from ${ADDRESS.allowed}:443`);
    const enforcing = await kernel.policyRules(host(), DEFAULT_POLICY);

    await reload(policyFile({ default: true }));
    const auditing = await kernel.policyRules(host(), DEFAULT_POLICY);
    expect(kept(auditing)).toEqual(kept(enforcing));
    expect(await kernel.verdict(host(), DEFAULT_POLICY)).toMatchObject({ kind: 'audit' });
    expect(await request(DEFAULT_CLIENT, ADDRESS.denied, 443)).toBe(`hello from ${ADDRESS.denied}:443`);

    await reload(policyFile({ default: false }));
    expect(kept(await kernel.policyRules(host(), DEFAULT_POLICY))).toEqual(kept(enforcing));
    expect(await kernel.verdict(host(), DEFAULT_POLICY)).toMatchObject({ kind: 'drop' });
    expect(await reach(DEFAULT_CLIENT, ADDRESS.denied, 443)).toBe('dropped');
    expect(await request(DEFAULT_CLIENT, ADDRESS.allowed, 443)).toBe(`hello from ${ADDRESS.allowed}:443`);
    console.info(`--backend ${backend.name}, default policy, audit on by reload:\n- ${enforcing.at(-1)}\n+ ${auditing.at(-1)}`);
  }, 60_000);
});
