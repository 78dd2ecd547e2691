/**
 * Live changes of the policies. Reloads reads the real file (a temp dir) and hands the result
 * to a recording stand-in for PolicyFirewalls whose update can be held open, so that a
 * reload can be caught half-way; watchFile is driven by real renames in a temp dir and a
 * FakeClock for its settling delay, so nothing waits on a timer of its own.
 */
import { watch } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { loadPolicies } from '../../../src/config/policies.js';
import type { PolicyFirewalls } from '../../../src/daemon/policy-firewalls.js';
import { Reloads, watchFile } from '../../../src/daemon/reloads.js';
import { Clients } from '../../../src/policy/clients.js';
import { LABELS } from '../../../src/policy/policies.js';
import type { Clock, Timer } from '../../../src/util/clock.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-reload-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** PolicyFirewalls as Reloads sees it: update() recorded, and held until release() when hold() was called. */
function recordingFirewalls() {
  const updates: Array<{ policies: string[]; routes: Array<{ client: string; policy: string }> }> = [];
  let held: { promise: Promise<void>; release: () => void } | undefined;
  let failure: Error | undefined;
  const firewalls = {
    async update(policies: ReadonlyArray<{ name: string }>, routes: ReadonlyArray<{ client: string; policy: string }>) {
      updates.push({ policies: policies.map((p) => p.name), routes: [...routes] });
      if (held) await held.promise;
      if (failure) throw failure;
    },
  };
  return {
    firewalls: firewalls as unknown as PolicyFirewalls,
    updates,
    hold() {
      let release!: () => void;
      held = { promise: new Promise<void>((resolve) => (release = resolve)), release: () => release() };
    },
    release() {
      held?.release();
      held = undefined;
    },
    failWith(err: Error | undefined) {
      failure = err;
    },
  };
}

async function setUp(yaml: string) {
  const file = join(dir, 'policies.yaml');
  await writeFile(file, yaml);
  const config = parseConfig(['--policy', file, 'allowed.test.'], {});
  const clients = new Clients(await loadPolicies(config));
  const kernel = recordingFirewalls();
  const { log, lines } = recordingLogger();
  const clock = new FakeClock(Date.parse('2026-12-01T10:00:00Z'));
  const reloads = new Reloads(config, clients, kernel.firewalls, log, () => clock.now());
  return { file, clients, kernel, lines, clock, reloads };
}

describe('Reloads', () => {
  it('applies a good file: the clients take the new policies and the firewalls the policies in use and the routes', async () => {
    const { file, clients, kernel, lines, reloads } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    clients.setContainer({ id: 'a'.repeat(64), name: 'runner', addresses: ['172.18.0.2'], labels: { [LABELS.policy]: 'deploy' } });
    expect(clients.forClient('172.18.0.2').policy.name).toBe('refused'); // no such policy yet

    await writeFile(file, 'policies:\n  deploy: {allow: [deploy.test.], clients: ["172.18.1.0/24"]}\n');
    expect(await reloads.reload('SIGHUP')).toEqual({ at: '2026-12-01T10:00:00.000Z', ok: true, why: 'SIGHUP' });

    expect(clients.forClient('172.18.0.2').policy.name).toBe('deploy');
    expect(kernel.updates).toEqual([
      { policies: ['default', 'deploy'], routes: [{ client: '172.18.0.2', policy: 'deploy' }, { client: '172.18.1.0/24', policy: 'deploy' }] },
    ]);
    expect(lines.filter((l) => l.msg === 'policies reloaded')).toMatchObject([{ why: 'SIGHUP', policies: ['deploy'], file }]);
    expect(reloads.last).toEqual({ at: '2026-12-01T10:00:00.000Z', ok: true, why: 'SIGHUP' });
  });

  it('refuses a bad file whole: one error line with the file, line and reason, the running policies stay, the kernel is not touched', async () => {
    const { file, clients, kernel, lines, reloads, clock } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    const before = clients.policySet;
    await writeFile(file, 'policies:\n  ci: {allow: [github.com.]}\n  web: {allow: ["*"]}\n');
    await clock.advance(5_000);

    const result = await reloads.reload('the file changed');

    expect(result).toMatchObject({ ok: false, why: 'the file changed', at: '2026-12-01T10:00:05.000Z' });
    expect(result.error).toMatch(new RegExp(`^${file}:3: bad pattern "\\*": it allows every name`));
    expect(clients.policySet).toBe(before);
    expect(kernel.updates).toEqual([]);
    const errors = lines.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'policy reload refused: the running policies stay', why: 'the file changed', err: result.error });
    expect(reloads.last).toBe(result);
  });

  it('refuses a file that is gone, keeping the running policies', async () => {
    const { file, clients, reloads } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    const before = clients.policySet;
    await rm(file);
    expect(await reloads.reload('SIGHUP')).toMatchObject({ ok: false, error: `cannot read the policy file ${file} (ENOENT): check --policy` });
    expect(clients.policySet).toBe(before);
  });

  it('reports a kernel that refuses the change instead of throwing it at the caller (SIGHUP has no one to catch it)', async () => {
    const { kernel, reloads } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    kernel.failWith(new Error('iptables-restore failed: line 2: Chain already exists'));
    await expect(reloads.reload('SIGHUP')).resolves.toMatchObject({ ok: false, error: 'iptables-restore failed: line 2: Chain already exists' });
  });

  it('coalesces reloads asked while one runs into one more, after it', async () => {
    const { file, kernel, reloads, lines } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    kernel.hold();
    const first = reloads.reload('SIGHUP');
    await until(() => kernel.updates.length === 1);
    await writeFile(file, 'policies:\n  ci: {allow: [github.com.]}\n  web: {allow: [api.stripe.com.]}\n');
    const asked = [reloads.reload('the file changed'), reloads.reload('the file changed'), reloads.reload('SIGHUP')];
    kernel.release();

    await first;
    const results = await Promise.all(asked);
    expect(kernel.updates.map((u) => u.policies)).toEqual([['default', 'ci'], ['default', 'ci', 'web']]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true]);
    expect(lines.filter((l) => l.msg === 'policies reloaded')).toHaveLength(2);
  });

  it('answers a reload asked while one runs with the reload that read the file after it was asked', async () => {
    const { file, kernel, reloads } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    kernel.hold();
    const first = reloads.reload('SIGHUP');
    await until(() => kernel.updates.length === 1);
    await writeFile(file, 'policies:\n  ci: {allow: ["bad?"]}\n');
    const second = reloads.reload('SIGHUP');
    kernel.release();

    expect(await first).toMatchObject({ ok: true });
    // The file as it was when the second reload was asked is bad: that caller must hear so.
    expect(await second).toMatchObject({ ok: false, error: expect.stringMatching(/policies\.yaml:2: bad pattern "bad\?"/) });
    expect(reloads.last).toMatchObject({ ok: false });
  });

  it('runs a reload asked after the last one ended on its own', async () => {
    const { kernel, reloads } = await setUp('policies:\n  ci: {allow: [github.com.]}\n');
    await reloads.reload('SIGHUP');
    await reloads.reload('SIGHUP');
    expect(kernel.updates).toHaveLength(2);
  });
});

/** A Clock that counts the timers set on it: each is one event the watcher saw. */
function countingClock(clock: FakeClock): Clock & { set: number } {
  const counting = {
    set: 0,
    now: () => clock.now(),
    setTimeout: (fn: () => void, ms: number): Timer => {
      counting.set++;
      return clock.setTimeout(fn, ms);
    },
    clearTimeout: (timer: Timer) => clock.clearTimeout(timer),
  };
  return counting;
}

const until = async (predicate: () => boolean, what = 'condition') => {
  for (let i = 0; i < 2000 && !predicate(); i++) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 1000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
};

describe('watchFile', () => {
  it('fires once when an editor renames a new file over the policy file, after the events settle', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'allow: []\n');
    const clock = new FakeClock();
    const counting = countingClock(clock);
    let changes = 0;
    const watcher = watchFile(file, () => changes++, recordingLogger().log, 200, counting);
    try {
      await writeFile(join(dir, '.policies.yaml.swp'), 'allow: [a.test.]\n');
      await rename(join(dir, '.policies.yaml.swp'), file);
      await until(() => counting.set >= 1, 'the rename to be seen');
      await clock.advance(199);
      expect(changes).toBe(0); // still settling
      await clock.advance(1);
      expect(changes).toBe(1);
    } finally {
      watcher.close();
    }
  });

  it('coalesces a burst of changes into one call', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'allow: []\n');
    const clock = new FakeClock();
    const counting = countingClock(clock);
    let changes = 0;
    const watcher = watchFile(file, () => changes++, recordingLogger().log, 200, counting);
    try {
      for (let i = 0; i < 3; i++) {
        const seen = counting.set;
        await writeFile(join(dir, `tmp${i}`), `allow: [a${i}.test.]\n`);
        await rename(join(dir, `tmp${i}`), file);
        await until(() => counting.set > seen, `rename ${i} to be seen`);
        await clock.advance(100); // each change inside the settling time of the one before
      }
      expect(changes).toBe(0);
      await clock.advance(200);
      expect(changes).toBe(1);
      expect(clock.pending).toBe(0);
    } finally {
      watcher.close();
    }
  });

  it('ignores the other files of the directory', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'allow: []\n');
    const clock = new FakeClock();
    const counting = countingClock(clock);
    const watcher = watchFile(file, () => undefined, recordingLogger().log, 200, counting);
    // A second watch of the directory sees the same events in the same turn of the loop.
    const seen = new Set<string>();
    const probe = watch(dir, (_, name) => name && seen.add(name));
    try {
      await writeFile(join(dir, 'other.yaml'), 'x\n');
      await writeFile(join(dir, 'policies.yaml.bak'), 'x\n');
      await until(() => seen.has('other.yaml') && seen.has('policies.yaml.bak'), 'the other files to be seen');
      await new Promise((r) => setImmediate(r));
      expect(counting.set).toBe(0);
      await writeFile(file, 'allow: [a.test.]\n');
      await until(() => counting.set >= 1, 'the policy file change to be seen');
    } finally {
      probe.close();
      watcher.close();
    }
  });

  it('calls nothing after close, even with a change still settling', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'allow: []\n');
    const clock = new FakeClock();
    const counting = countingClock(clock);
    let changes = 0;
    const watcher = watchFile(file, () => changes++, recordingLogger().log, 200, counting);
    await writeFile(file, 'allow: [a.test.]\n');
    await until(() => counting.set >= 1, 'the change to be seen');
    watcher.close();
    await clock.advance(1_000);
    expect(changes).toBe(0);
  });

  it('says to reload with SIGHUP when the directory cannot be watched, and closes quietly', () => {
    const { log, lines } = recordingLogger();
    const file = join(dir, 'missing', 'policies.yaml');
    const watcher = watchFile(file, () => undefined, log);
    expect(lines).toMatchObject([{ msg: 'cannot watch the policy file: reload with SIGHUP', file }]);
    expect(() => watcher.close()).not.toThrow();
  });
});
