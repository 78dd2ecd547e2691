/**
 * When the rules cannot hold (issue item 8), on-his-name must say so rather than look as if
 * they did; and a mistyped command must not become a pattern (item 9). In the lab:
 * - `on-his-name rset` (reset, mistyped) is refused in one line and installs nothing;
 * - FORWARD without its jump to DOCKER-USER: every rule there is ignored, so it refuses to
 *   start, naming the fix;
 * - someone's `iptables -I DOCKER-USER 1 -j ACCEPT` above our block: at start it refuses,
 *   naming the rule; while it runs, the next reconcile logs an error line and /healthz
 *   answers 503 with the reason.
 * The backend plays no part: the default one runs.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BACKEND } from '../lab/backends.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { CLI } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const ADMIN_PORT = 9473;
const ACCEPT_ALL = ['DOCKER-USER', '1', '-j', 'ACCEPT'];

describe.skipIf(!canUseNamespaces())(`on-his-name when its rules cannot hold, and a mistyped command${skipNote()}`, () => {
  let hostile: HostileLab;
  const backend = DEFAULT_BACKEND;
  /** The whole filter table, counters left out: what "installs nothing" compares. */
  const table = async () => (await hostile.lab.host.exec('iptables-save', ['-t', 'filter'])).split('\n').filter((line) => !line.startsWith('#'));
  const refused = async (args: readonly string[]) => {
    const outcome = await hostile.startOrExit(args);
    if ('running' in outcome) {
      const rules = await hostile.lab.rules();
      await hostile.stopDaemon();
      expect.fail(`it started and runs as if its rules held; DOCKER-USER:\n${rules.join('\n')}`);
    }
    return outcome;
  };

  beforeAll(async () => {
    hostile = await createHostileLab();
  }, 60_000);

  printOnFailure(async () => firewallReport(await hostile.lab.rules(), hostile.daemon?.output()));

  afterAll(async () => {
    await hostile?.close();
  });

  it('"rset" is not a pattern: refused with a "did you mean reset" line, nothing installed', async () => {
    const before = await table();
    const bare = await execa('ip', ['netns', 'exec', hostile.lab.host.name, process.execPath, CLI, 'rset'], { reject: false, timeout: 20_000 });
    expect(bare.exitCode).toBe(2);
    expect(String(bare.stderr).trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: "rset" is not a command \(did you mean "reset"\?\)/)]);
    const outcome = await refused([...backend.args, 'rset']);
    expect(outcome.exitCode).toBe(2);
    expect(outcome.stderr).toMatch(/did you mean "reset"/);
    expect(await table()).toEqual(before);
  });

  it('refuses to start when FORWARD does not jump to DOCKER-USER, and says how to restore the jump', async () => {
    await hostile.lab.iptables('-D', 'FORWARD', '-j', 'DOCKER-USER');
    try {
      const outcome = await refused([...backend.args, 'allowed.test.']);
      expect(outcome.exitCode).toBe(2);
      expect(outcome.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: FORWARD does not jump to DOCKER-USER .*"iptables -I FORWARD -j DOCKER-USER"/)]);
    } finally {
      await hostile.lab.iptables('-I', 'FORWARD', '-j', 'DOCKER-USER');
    }
  });

  it('an ACCEPT put above its block while it runs is an error line and a 503 from /healthz at the next reconcile', async () => {
    const daemon = await hostile.start([...backend.args, '--reconcile-interval', '1', '--admin-listen', String(ADMIN_PORT), 'allowed.test.']);
    expect((await hostile.admin(ADMIN_PORT, '/healthz')).status).toBe(200);
    await hostile.lab.iptables('-I', ...ACCEPT_ALL);
    try {
      const line = await daemon.waitFor((l) => l.level === 50 && l.msg.startsWith(`egress from ${hostile.lab.bridge} is NOT filtered: `), 10_000);
      expect(line.msg).toContain('"-A DOCKER-USER -j ACCEPT"');
      const health = await hostile.admin(ADMIN_PORT, '/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toContain('-A DOCKER-USER -j ACCEPT');
    } finally {
      await hostile.stopDaemon();
    }
  });

  it('the same ACCEPT present at start: refuses, naming the rule', async () => {
    try {
      const outcome = await refused([...backend.args, 'allowed.test.']);
      expect(outcome.exitCode).toBe(2);
      expect(outcome.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^on-his-name: a rule above on-his-name's block in DOCKER-USER lets traffic from ohnbr0 past on-his-name: "-A DOCKER-USER -j ACCEPT"; remove it or narrow it/)]);
    } finally {
      await hostile.lab.iptables('-D', ...ACCEPT_ALL.filter((word) => word !== '1'));
    }
  });
});
