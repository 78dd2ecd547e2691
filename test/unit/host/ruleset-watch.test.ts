import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { childOfUs, couldOpen, watchRuleset, type RulesetWatch } from '../../../src/host/ruleset-watch.js';
import { FakeClock, settle } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';

describe('which ruleset changes could open egress', () => {
  it.each([
    'delete table inet on-his-name',
    'flush table inet on-his-name',
    'flush ruleset',
    'delete table ip filter',
    'delete chain inet on-his-name egress-br0',
    'flush chain inet on-his-name policy-ci',
    'delete set inet on-his-name allow4',
    'add rule inet on-his-name egress-br0 accept',
    'add rule ip filter DOCKER-USER counter packets 0 bytes 0 accept',
    'insert rule ip filter FORWARD iifname "br0" accept',
    'delete rule ip filter DOCKER-USER handle 12',
    'add rule ip filter INPUT tcp dport 22 accept',
    'delete chain ip filter ON-HIS-NAME-SOURCES',
    'add rule ip filter OHN-P-ci accept',
    'delete element inet on-his-name allow4 { 198.51.100.1 timeout 1h expires 59m59s484ms }',
    'delete element inet on-his-name p-ci-6 { 2001:db8::1 timeout 1h expires 59m }',
  ])('%s: yes', (line) => expect(couldOpen(line)).toBe(true));

  it.each([
    'add element inet on-his-name allow4 { 198.51.100.7 timeout 5m }',
    'delete element inet on-his-name blocked4 { 192.0.2.10 . 203.0.113.10 . tcp . 443 }',
    'delete element ip nat some-set { 10.0.0.1 }',
    '# new generation 5 by process 13384 (nft)',
    'add rule ip nat POSTROUTING oifname "eth0" masquerade',
    'add table ip docker-bridges',
    'add chain ip filter DOCKER-ISOLATION-STAGE-1',
    '',
  ])('%s: no', (line) => expect(couldOpen(line)).toBe(false));
});

describe('watchRuleset', () => {
  let watch: RulesetWatch | undefined;
  afterEach(() => watch?.stop());

  /** Our writers' pids in these tests. */
  const OURS = new Set([4242]);

  function start() {
    const clock = new FakeClock();
    const { log, lines } = recordingLogger();
    let emit: (line: string) => void = () => {};
    let exit: (err?: Error) => void = () => {};
    let spawned = 0;
    let reconciles = 0;
    watch = watchRuleset({
      clock,
      log,
      minIntervalMs: 1_000,
      onChange: () => reconciles++,
      isOurs: (pid) => OURS.has(pid),
      spawn: (onLine) => {
        spawned++;
        emit = onLine;
        return { exited: new Promise((resolve, reject) => (exit = (err) => (err ? reject(err) : resolve(undefined)))), stop: () => exit() };
      },
    });
    return { clock, lines, emit: (line: string) => emit(line), exit: (err?: Error) => exit(err), spawned: () => spawned, reconciles: () => reconciles };
  }

  it('reconciles at once after a change that could open egress, and at most once a second after that', async () => {
    const w = start();
    w.emit('delete table inet on-his-name');
    w.emit('# new generation 3 by process 5151 (nft)');
    await w.clock.advance(1); // a timer's shortest delay
    expect(w.reconciles()).toBe(1);
    for (let i = 0; i < 50; i++) w.emit('delete rule ip filter DOCKER-USER handle 9'), w.emit(`# new generation ${4 + i} by process 5151 (iptables)`);
    await w.clock.advance(999);
    expect(w.reconciles()).toBe(1);
    await w.clock.advance(1);
    expect(w.reconciles()).toBe(2);
  });

  it("skips a transaction of our own writers (the generation line names the process), and reconciles for anyone else's", async () => {
    const w = start();
    w.emit('add rule ip filter DOCKER-USER -d 198.51.100.7 counter accept');
    w.emit('delete rule ip filter DOCKER-USER handle 12');
    w.emit('# new generation 8 by process 4242 (iptables-restor)');
    await w.clock.advance(5_000);
    expect(w.reconciles()).toBe(0);

    w.emit('insert rule ip filter DOCKER-USER iifname "br0" accept');
    await w.clock.advance(50);
    expect(w.reconciles()).toBe(0); // not before its transaction is over and its author known
    w.emit('# new generation 9 by process 5151 (iptables)');
    await w.clock.advance(1);
    expect(w.reconciles()).toBe(1);
    expect(w.lines.find((l) => l.msg === 'the ruleset changed: reconciling')).toMatchObject({ change: 'insert rule ip filter DOCKER-USER iifname "br0" accept', writerPid: 5151 });
  });

  it('reconciles for a change whose author is not named within 100 ms (a monitor without generation lines)', async () => {
    const w = start();
    w.emit('flush chain ip filter DOCKER-USER');
    await w.clock.advance(99);
    expect(w.reconciles()).toBe(0);
    await w.clock.advance(1);
    await w.clock.advance(1);
    expect(w.reconciles()).toBe(1);
  });

  it('does nothing for our own set elements coming and going', async () => {
    const w = start();
    for (let i = 0; i < 100; i++) w.emit(`add element inet on-his-name allow4 { 198.51.100.${i} timeout 5m }`);
    w.emit('delete element inet on-his-name allow4 { 198.51.100.7 }');
    w.emit('# new generation 12 by process 4242 (nft)'); // our expiry
    await w.clock.advance(10_000);
    expect(w.reconciles()).toBe(0);
  });

  it('starts the monitor again after it ends, saying so; not when nft is not installed', async () => {
    const w = start();
    w.exit(new Error('killed'));
    await settle();
    expect(w.lines.filter((l) => l.msg.startsWith('nft monitor ended'))).toHaveLength(1);
    await w.clock.advance(30_000);
    expect(w.spawned()).toBe(2);
    w.exit(Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' }));
    await settle();
    await w.clock.advance(60_000);
    expect(w.spawned()).toBe(2);
    expect(w.lines.some((l) => l.msg.startsWith('no nft command here'))).toBe(true);
  });

  it('stops the monitor, and reconciles no more, once stopped', async () => {
    const w = start();
    watch!.stop();
    w.emit('flush ruleset');
    await w.clock.advance(5_000);
    expect(w.reconciles()).toBe(0);
    expect(w.lines.some((l) => l.msg.startsWith('nft monitor ended'))).toBe(false);
  });
});

describe('childOfUs', () => {
  it('knows a child of this process, and nothing else', async () => {
    const child = execa('sleep', ['30']);
    try {
      expect(childOfUs(child.pid!)).toBe(true);
      expect(childOfUs(process.pid)).toBe(false);
      expect(childOfUs(process.ppid)).toBe(false);
      expect(childOfUs(2 ** 22 + 1)).toBe(false); // above pid_max: no such process
    } finally {
      child.kill();
      await child.catch(() => undefined);
    }
  });
});
