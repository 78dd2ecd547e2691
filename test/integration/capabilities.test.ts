/**
 * The capabilities examples/on-his-name.service leaves the daemon are enough: the real
 * CLI, bounded by setpriv to the unit's CapabilityBoundingSet, installs its block, chowns
 * its socket to unbound's user, opens an allowed name through the ipset backend (the
 * backend that needs the most) and serves the admin API. Without CAP_NET_RAW it cannot.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AcceptedView } from '../../src/admin/api.js';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const PORT = 9731;
const UNIT = new URL('../../examples/on-his-name.service', import.meta.url);
const has = (tool: string) => execa('sh', ['-c', `command -v ${tool}`], { reject: false }).then((r) => r.exitCode === 0);

/** `CAP_NET_ADMIN CAP_NET_RAW` → `-all,+net_admin,+net_raw`, as setpriv takes it. */
async function unitBoundingSet(without: string[] = []): Promise<string> {
  const line = /^CapabilityBoundingSet=(.*)$/m.exec(await readFile(UNIT, 'utf8'))![1]!;
  const caps = line.split(/\s+/).filter((c) => c && !without.includes(c));
  return ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}

describe.skipIf(!canUseNamespaces())(`on-his-name with only the systemd unit's capabilities${skipNote()}`, () => {
  let dir: string;
  let socket: string;
  let lab: FirewallLab;
  let daemon: CliProcess | undefined;
  const args = () => ['--backend', 'ipset', '--interface', BRIDGE, '--listen', socket, '--admin-listen', String(PORT), 'allowed.test.'];

  beforeAll(async () => {
    for (const tool of ['setpriv', 'ipset']) if (!(await has(tool))) throw new Error(`${tool} not found (CI installs util-linux and ipset)`);
    dir = await mkdtemp(join(tmpdir(), 'ohn-caps-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket });
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await lab?.hostExec(process.execPath, [CLI, 'reset']).catch(() => undefined);
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('cannot start the ipset backend without CAP_NET_RAW, and says why', async () => {
    const bounded = ['setpriv', '--bounding-set', await unitBoundingSet(['CAP_NET_RAW']), '--inh-caps', '-all'];
    const result = await execa('ip', ['netns', 'exec', lab.host.name, ...bounded, process.execPath, CLI, '--log-format', 'json', ...args()], { reject: false, timeout: 20_000 });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/Can't open socket to ipset/);
  });

  it('runs, chowns its socket and opens an allowed name with NET_ADMIN, NET_RAW and CHOWN only', async () => {
    const uid = await unboundUid();
    const bounded = ['setpriv', '--bounding-set', await unitBoundingSet(), '--inh-caps', '-all'];
    daemon = startCli(lab.host.name, [...args(), '--socket-uid', String(uid), '--log-level', 'debug'], {}, bounded);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
    expect((await stat(socket)).uid).toBe(uid);
    await lab.startDns();
    await daemon.waitFor((l) => l.msg === 'producer connected', 15_000);
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    const accepted = JSON.parse(await lab.hostExec('curl', ['-s', `http://127.0.0.1:${PORT}/api/accepted`])) as AcceptedView;
    expect(accepted.addresses).toMatchObject([{ address: '198.51.100.10', client: '192.0.2.10' }]);
    expect(accepted.addresses[0]!.packets).toBeGreaterThan(0);
  }, 60_000);
});
