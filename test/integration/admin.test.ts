/**
 * The admin API of the real CLI in the firewall lab, for both backends: unbound sends a
 * real dnstap answer, a container opens real TCP connections through the rule it opened,
 * and the kernel's counters show up in /api/accepted and in `on-his-name status`; the
 * decision shows up in /metrics. The API listens on the lab's host namespace loopback, so
 * every request is made from inside that namespace, as an operator on the host would.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AcceptedView, HealthView, MatchersView } from '../../src/admin/api.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const PORT = 9464;
const hasIpset = () => execa('sh', ['-c', 'command -v ipset'], { reject: false }).then((r) => r.exitCode === 0);

describe.skipIf(!canUseNamespaces()).each(['iptables', 'ipset'])(`on-his-name --admin-listen, --backend %s${skipNote()}`, (backend) => {
  let dir: string;
  let lab: FirewallLab;
  let daemon: CliProcess;
  /** curl inside the lab's host namespace: status code and body. */
  const get = async (path: string) => {
    const out = await lab.hostExec('curl', ['-s', '--max-time', '5', '-w', '\\n%{http_code} %{content_type}', `http://127.0.0.1:${PORT}${path}`]);
    const at = out.lastIndexOf('\n');
    const trailer = out.slice(at + 1);
    const space = trailer.indexOf(' ');
    return { status: Number(trailer.slice(0, space)), type: trailer.slice(space + 1), body: out.slice(0, at) };
  };
  const getJson = async <T>(path: string) => JSON.parse((await get(path)).body) as T;
  const status = (args: string[] = ['--admin-listen', String(PORT)]) =>
    execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'status', ...args], { reject: false });

  beforeAll(async () => {
    if (backend === 'ipset' && !(await hasIpset())) throw new Error('ipset not found: apt-get install ipset (CI installs it)');
    dir = await mkdtemp(join(tmpdir(), 'ohn-admin-'));
    await chmod(dir, 0o755);
    const socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket });
    daemon = startCli(lab.host.name, [
      '--backend', backend, '--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()),
      '--admin-listen', String(PORT), '--log-level', 'debug', 'allowed.test.', '**.deep.test.',
    ]);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
    await lab.startDns();
    await daemon.waitFor((l) => l.msg === 'producer connected');
  }, 60_000);

  afterEach((context) => {
    if (context.task.result?.state === 'fail') console.error(`daemon log:\n${daemon.output()}`);
  });

  afterAll(async () => {
    await daemon?.stop();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('says where the API listens, on loopback, without a warning', () => {
    expect(daemon.lines.find((l) => l.msg === 'admin API listening')).toMatchObject({ url: `http://127.0.0.1:${PORT}`, level: 30 });
  });

  it('shows an address opened by a real answer with its client and the packets of real connections through it', async () => {
    expect(await getJson<AcceptedView>('/api/accepted')).toMatchObject({ addresses: [] });
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    expect(await lab.connect('198.51.100.10', 443)).toBe(true);

    const response = await get('/api/accepted');
    expect(response.status).toBe(200);
    expect(response.type).toBe('application/json; charset=utf-8');
    const accepted = (JSON.parse(response.body) as AcceptedView).addresses;
    expect(accepted).toHaveLength(1);
    const open = accepted[0]!;
    expect(open).toMatchObject({ address: '198.51.100.10', family: 4, name: 'allowed.test.', client: '192.0.2.10' });
    expect(open.expiresInSeconds).toBeGreaterThan(800); // the defaults: max(TTL, 300) + 600
    expect(open.packets).toBeGreaterThanOrEqual(2); // the SYN of each connection (a retransmitted SYN counts too)
    expect(open.bytes).toBeGreaterThan(0);
  });

  it('prints the same for a person with on-his-name status', async () => {
    const result = await status();
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^ADDRESS\s+NAME\s+POLICY\s+CLIENT\s+CONTAINER\s+EXPIRES IN\s+PACKETS\s+BYTES$/);
    const row = lines.find((l) => l.startsWith('198.51.100.10 '))!.split(/\s{2,}/);
    expect(row.slice(0, 5)).toEqual(['198.51.100.10', 'allowed.test.', 'default', '192.0.2.10', '-']);
    expect(row[5]).toMatch(/^1[45]m \d\ds$/);
    expect(Number(row[6])).toBeGreaterThanOrEqual(2);
    expect(row[7]).toMatch(/^\d+ B$/);
    expect(result.stdout).toMatch(/^default\s+allowed\.test\.\s+1$/m);
    expect(result.stdout).toMatch(/^default\s+\*\*\.deep\.test\.\s+0$/m);
    console.info(`on-his-name status (--backend ${backend}):\n${result.stdout}`);
  });

  it('counts the decision and the time to the kernel in /metrics, and the patterns in /api/matchers', async () => {
    // unbound's own start-up lookup of "test." is a deny too: count the difference.
    const denies = () => daemon.lines.filter((l) => l.msg === 'deny').length;
    const deniedBefore = denies();
    await lab.resolve('denied.test');
    await daemon.waitFor((l) => l.msg === 'deny' && l.name === 'denied.test.', 5_000);
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain/);
    const value = (series: string) => Number(metrics.body.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1]);
    expect(value('on_his_name_decisions_total{outcome="allow"}')).toBe(1);
    expect(value('on_his_name_decisions_total{outcome="deny"}')).toBe(deniedBefore + 1);
    expect(value('on_his_name_dnstap_frames_total')).toBeGreaterThanOrEqual(2);
    expect(value('on_his_name_addresses_installed{family="4",policy="default"}')).toBe(1);
    expect(value('on_his_name_rule_latency_seconds_count{family="4"}')).toBe(1);
    console.info(metrics.body.split('\n').filter((l) => l.startsWith('on_his_name_') && !l.includes('_bucket')).join('\n'));
    expect(await getJson<MatchersView>('/api/matchers')).toEqual({
      matchers: [{ policy: 'default', pattern: 'allowed.test.', allows: 1 }, { policy: 'default', pattern: '**.deep.test.', allows: 0 }],
      decisions: { allow: 1, deny: deniedBefore + 1, skip: expect.any(Number) },
    });
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    expect(await getJson<HealthView>('/healthz')).toMatchObject({ status: 'ok', addresses: 1 });
    expect((await get('/api/nothing')).status).toBe(404);
  });

  it('status says in one line that the daemon cannot be reached, once it is stopped', async () => {
    expect(await daemon.stop()).toBe(0);
    const result = await status();
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`on-his-name: cannot read the admin API at http://127.0.0.1:${PORT} (ECONNREFUSED): is on-his-name running with --admin-listen 127.0.0.1:${PORT}?`);
    const unset = await status([]);
    expect(unset.exitCode).toBe(2);
    expect(unset.stderr).toMatch(/^on-his-name: status reads the admin API, and no address was given: start the daemon with --admin-listen ADDR/);
  });
});
