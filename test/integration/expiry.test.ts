/**
 * Expiry, restart and reconcile on real iptables (nf_tables) in the firewall lab, with a
 * lifetime of a few seconds: a rule goes when it expires while an established connection
 * through it keeps working and a new one is dropped; a restart keeps the expiry written
 * in the comments; a flushed DOCKER-USER comes back on the next reconcile. Then the
 * xtables lock, with iptables-legacy (iptables-nft takes no lock) and a lock file of our
 * own: a change waits for the lock, and one that outlasts --wait is retried, never lost.
 */
import { execa, type ResultPromise } from 'execa';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Firewall } from '../../src/firewall/firewall.js';
import { iptablesRunner } from '../../src/firewall/iptables.js';
import { createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { Namespace } from '../lab/netns.js';
import { recordingLogger } from '../support/log.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { testLayout } from '../support/layout.js';

const PORT = 9000;
const ECHO = `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(${PORT}, '0.0.0.0', () => console.log('ready'))`;
/** Connects, then echoes stdin to the socket and the socket to stdout. */
const CLIENT = (address: string) =>
  `const s = require('net').connect(${PORT}, '${address}', () => console.log('connected'));` +
  `s.on('data', (d) => process.stdout.write(d)); process.stdin.on('data', (d) => s.write(d));` +
  `s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); }); s.on('close', () => process.exit(0));`;

/** Resolves when `text` has appeared in the child's stdout; false after `ms`. */
function output(child: ResultPromise) {
  let seen = '';
  child.stdout!.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  return async (text: string, ms = 3000): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (seen.includes(text)) return true;
    return seen.includes(text);
  };
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) if (await check()) return true;
  return check();
}

describe.skipIf(!canUseNamespaces())(`expiry and reconcile on real iptables${skipNote()}`, () => {
  let lab: FirewallLab;
  let dir: string;
  let echo: ResultPromise;
  const firewalls: Firewall[] = [];
  const runner = () => iptablesRunner({ prefix: ['ip', 'netns', 'exec', lab.host.name] });
  const layout = () => testLayout(lab.bridge, [PORT]);
  const inContainer = (script: string) => execa('ip', ['netns', 'exec', lab.containers[0]!.name, process.execPath, '-e', script], { stdin: 'pipe', reject: false });
  /** A fresh TCP connection from container 0: true if the handshake completed within a second. */
  const canConnect = async (address: string) => {
    const probe = inContainer(`${CLIENT(address)} setTimeout(() => process.exit(2), 1000);`);
    const connected = await output(probe)('connected', 1500);
    probe.kill();
    await probe;
    return connected;
  };
  const acceptsFor = async (address: string) => (await lab.listRules()).filter((l) => l.includes(`-d ${address}/32`));
  const track = (firewall: Firewall) => (firewalls.push(firewall), firewall);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-expiry-'));
    await chmod(dir, 0o755);
    lab = await createFirewallLab({ dnstapSocket: join(dir, 'dnstap.sock') });
    echo = execa('ip', ['netns', 'exec', lab.internet.name, process.execPath, '-e', ECHO], { reject: false });
    expect(await output(echo)('ready')).toBe(true);
  }, 60_000);

  afterAll(async () => {
    for (const firewall of firewalls) firewall.stop();
    echo?.kill();
    await echo;
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('removes a rule when it expires; the connection it let in keeps working, a new one is dropped', async () => {
    const { log } = recordingLogger();
    const firewall = track(new Firewall({ runner: runner(), layout: layout(), log, minTtl: 3, ttlGrace: 0 }));
    await firewall.start();
    firewall.allow('198.51.100.10', 'echo.test.', 1);
    await firewall.settled();
    expect((await acceptsFor('198.51.100.10'))[0]).toMatch(/--comment "on-his-name exp=\d{10} echo.test."/);
    expect(await canConnect('198.51.100.10')).toBe(true);

    const client = inContainer(CLIENT('198.51.100.10'));
    const seen = output(client);
    try {
      expect(await seen('connected')).toBe(true);
      client.stdin!.write('before expiry\n');
      expect(await seen('before expiry')).toBe(true);

      expect(await until(async () => (await acceptsFor('198.51.100.10')).length === 0, 10_000)).toBe(true);
      expect(firewall.stats.expired).toBe(1);
      expect(firewall.isAllowed('198.51.100.10')).toBe(false);

      client.stdin!.write('after expiry\n');
      expect(await seen('after expiry')).toBe(true);
      expect(await canConnect('198.51.100.10')).toBe(false);
    } finally {
      client.kill();
      await client;
      firewall.stop();
    }
  }, 30_000);

  it('keeps the expiry from the comments across a restart, and gives a rule from before expiry a fresh one', async () => {
    const first = track(new Firewall({ runner: runner(), layout: layout(), log: recordingLogger().log, minTtl: 3600, ttlGrace: 60 }));
    await first.start();
    first.allow('198.51.100.11', 'kept.test.', 0);
    await first.settled();
    first.stop();
    const expiresAt = first.entries().find((e) => e.address === '198.51.100.11')!.expiresAt!;
    expect(await acceptsFor('198.51.100.11')).toEqual([expect.stringContaining(`"on-his-name exp=${expiresAt} kept.test."`)]);
    // As a version without expiry wrote it.
    await lab.iptables('-I', 'DOCKER-USER', '6', '-d', '198.51.100.13/32', '-i', lab.bridge, '-p', 'tcp', '-m', 'tcp', '--dport', String(PORT), '-m', 'comment', '--comment', 'on-his-name old.test.', '-j', 'ACCEPT');

    const second = track(new Firewall({ runner: runner(), layout: layout(), log: recordingLogger().log, minTtl: 3600, ttlGrace: 60 }));
    expect(await second.start()).toEqual({ adopted: 2, rebuilt: false });
    await second.settled();
    second.stop();
    expect(second.entries()).toContainEqual({ address: '198.51.100.11', name: 'kept.test.', expiresAt });
    expect(await acceptsFor('198.51.100.11')).toEqual([expect.stringContaining(`"on-his-name exp=${expiresAt} kept.test."`)]);
    const fresh = second.entries().find((e) => e.address === '198.51.100.13')!.expiresAt!;
    expect(fresh).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 3600);
    expect(await acceptsFor('198.51.100.13')).toEqual([expect.stringContaining(`"on-his-name exp=${fresh} old.test."`)]);
  });

  it('restores a flushed DOCKER-USER on reconcile and says what was missing', async () => {
    const { log, lines } = recordingLogger();
    // The reconcile runs when the test says (the timer is a unit test's business): nothing races the flush.
    const firewall = track(new Firewall({ runner: runner(), layout: layout(), log, minTtl: 3600, ttlGrace: 60 }));
    await firewall.start();
    firewall.allow('198.51.100.12', 'back.test.', 0);
    await firewall.settled();
    expect(await canConnect('198.51.100.12')).toBe(true);

    await lab.iptables('-F', 'DOCKER-USER');
    expect(await canConnect('198.51.100.10')).toBe(true); // nothing filters now: what the reconcile must repair
    await firewall.reconcile();
    firewall.stop();
    const rules = await lab.listRules();
    expect(rules.findIndex((l) => l.includes('source-check'))).toBe(1);
    expect(rules.findIndex((l) => l.includes('established'))).toBe(2);
    expect(rules.at(-1)).toContain('default-drop');
    expect(rules.filter((l) => l.includes('-j ACCEPT'))).toHaveLength(3); // .11, .12 and .13 from the tests before
    expect(lines.find((l) => l.level === 40)).toMatchObject({ rebuilt: true, missing: 3 });
    expect(await canConnect('198.51.100.12')).toBe(true);
    expect(await canConnect('198.51.100.10')).toBe(false);
  }, 30_000);
});

describe.skipIf(!canUseNamespaces())(`the xtables lock held by another program${skipNote()}`, () => {
  let ns: Namespace;
  let dir: string;
  let lockFile: string;
  const legacy = (...args: string[]) => ns.exec('iptables-legacy', args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-lock-'));
    lockFile = join(dir, 'xtables.lock');
    ns = await Namespace.create('ohnl');
    await legacy('-N', 'DOCKER-USER');
    await legacy('-A', 'DOCKER-USER', '-j', 'RETURN');
    await legacy('-I', 'FORWARD', '-j', 'DOCKER-USER');
  });
  afterAll(async () => {
    await ns?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Holds our lock file (never the shared /run/xtables.lock) for `seconds`; resolves once it is held. */
  async function holdLock(seconds: number): Promise<{ released: ResultPromise }> {
    const holder = execa('flock', [lockFile, 'sh', '-c', `echo locked; sleep ${seconds}`], { reject: false });
    expect(await output(holder)('locked')).toBe(true);
    return { released: holder }; // wrapped: awaiting a bare ResultPromise would wait for the release
  }

  it('delays a change while the lock is held, and retries one that outlasts the wait, losing nothing', async () => {
    const { log, lines } = recordingLogger();
    const runner = iptablesRunner({
      iptables: 'iptables-legacy',
      restore: 'iptables-legacy-restore',
      prefix: ['env', `XTABLES_LOCKFILE=${lockFile}`, 'ip', 'netns', 'exec', ns.name],
    });
    const firewall = new Firewall({ runner, layout: testLayout('br-lock', [443]), log, retryDelayMs: { first: 200, max: 1000 } });
    await firewall.start();

    let lock = await holdLock(1.5);
    firewall.allow('198.51.100.20', 'short-wait.test.');
    await sleep(700);
    expect(firewall.isAllowed('198.51.100.20')).toBe(false);
    await firewall.settled();
    await lock.released;
    expect(firewall.isAllowed('198.51.100.20')).toBe(true);
    expect(firewall.stats.applyFailures).toBe(0);

    lock = await holdLock(7); // longer than the runner's --wait 5
    firewall.allow('198.51.100.21', 'long-wait.test.');
    await sleep(5_500);
    expect(firewall.isAllowed('198.51.100.21')).toBe(false);
    await firewall.settled();
    await lock.released;
    firewall.stop();
    expect(firewall.isAllowed('198.51.100.21')).toBe(true);
    expect(firewall.stats.applyFailures).toBeGreaterThanOrEqual(1);
    expect(lines.find((l) => l.msg.startsWith('firewall apply failed'))?.err).toMatch(/Can't lock .*xtables\.lock|holding the xtables lock/);
    const rules = (await legacy('-S', 'DOCKER-USER')).split('\n');
    expect(rules.filter((l) => l.includes('-j ACCEPT'))).toHaveLength(2);
  }, 30_000);
});
