/**
 * The nftables backend with the real CLI and unbound in namespaces, on hosts where the
 * DOCKER-USER layout cannot work: Docker 29's nftables backend (table ip docker-bridges
 * accepting what the bridge sends, no DOCKER-USER at all), and a DOCKER-USER that nothing
 * jumps to. `auto` must pick our own table there and filter; nothing may fail open.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { BRIDGE, GATEWAY, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { Firewall } from '../../src/firewall/firewall.js';
import { NftablesBackend } from '../../src/firewall/nft/backend.js';
import { nftRunner } from '../../src/firewall/nft/runner.js';
import { NftTable } from '../../src/firewall/nft/table.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const hasNft = (await execa('sh', ['-c', 'command -v nft'], { reject: false })).exitCode === 0;
const note = `${skipNote()}${hasNft ? '' : ' (skipped: apt-get install nftables)'}`;
const QUICK = { timeoutSeconds: 2 };

describe.skipIf(!canUseNamespaces() || !hasNft)(`the nftables backend on a host shaped like Docker 29's nftables backend${note}`, () => {
  let dir: string;
  let socket: string;
  let lab: FirewallLab;
  let daemon: CliProcess | undefined;
  const nft = (...args: string[]) => lab.hostExec('nft', args);
  const table = () => nft('list', 'table', 'inet', 'on-his-name');
  const start = async (extra: string[] = []) => {
    daemon = startCli(lab.host.name, ['--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--log-level', 'debug', ...extra, 'allowed.test.', 'multi.test.']);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running');
    await daemon.waitFor((l) => l.msg === 'producer connected');
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-nft-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket, hostFirewall: 'docker-bridges', startDns: true });
  }, 60_000);

  printOnFailure(async () => firewallReport((await table().catch((e: Error) => e.message)).split('\n'), daemon?.output()));

  afterAll(async () => {
    await daemon?.stop();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reaches everything through Docker 29 before on-his-name runs (the lab works)', async () => {
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(true);
  });

  it('picks nftables by itself, says why, and closes egress before a producer is heard', async () => {
    await start();
    expect(daemon!.lines.find((l) => String(l.msg).startsWith('filtering with the nftables backend'))).toMatchObject({ backend: 'nftables', reason: 'there is no DOCKER-USER chain' });
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(false);
    expect(await table()).toContain('chain egress-ohnbr0');
  });

  it('opens an allowed name on the configured ports only, counting in the element, and keeps a denied one closed', async () => {
    expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
    expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    expect(await lab.connect('198.51.100.10', 443)).toBe(true);
    expect(await lab.connect('198.51.100.10', 8080, QUICK)).toBe(false);
    await lab.resolve('denied.test');
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(false);
    expect(await table()).toMatch(/198\.51\.100\.10 counter packets [1-9]\d* bytes \d+ timeout \d+m(\d+s)? expires .* comment "allowed\.test\."/);
  });

  it('lets a container reach the host only for DNS on the gateway', async () => {
    const server = execa('ip', ['netns', 'exec', lab.host.name, process.execPath, '-e', "require('net').createServer((s) => s.end('x')).listen(8081, '0.0.0.0')"]);
    server.catch(() => undefined);
    try {
      expect(await lab.resolve('multi.test')).toHaveLength(2);
      expect(await lab.connect(GATEWAY, 8081, QUICK)).toBe(false);
      expect(await lab.connect('198.51.100.1', 8081, QUICK)).toBe(false);
      expect(await lab.hostExec('nft', ['list', 'chain', 'inet', 'on-his-name', 'host-ohnbr0'])).toMatch(/counter packets [1-9]\d* bytes \d+ drop comment "on-his-name host-drop/);
    } finally {
      server.kill();
    }
  });

  it('stays closed while stopped, and a restart adopts every element with its lifetime, adding none', async () => {
    const before = (await table()).match(/198\.51\.100\.\d+ counter/g)!.sort();
    expect(await daemon!.stop()).toBe(0);
    daemon = undefined;
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(false);
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
    await start();
    expect(daemon!.lines.find((l) => String(l.msg).startsWith('adopted existing rules'))).toMatchObject({ adopted: 3, rebuilt: false });
    expect((await table()).match(/198\.51\.100\.\d+ counter/g)!.sort()).toEqual(before);
  });

  it('restores its table as soon as someone deletes it (nft monitor, not the 15 s reconcile), and says so', async () => {
    await daemon!.stop();
    await start([]);
    await nft('delete', 'table', 'inet', 'on-his-name');
    // Well under --reconcile-interval's default 15 s: only the ruleset watch can be this quick.
    await daemon!.waitFor((l) => String(l.msg).includes('our base rules were missing or damaged'), 5_000);
    await daemon!.waitFor((l) => l.msg === 'rules in the kernel' && Number(l.opened) >= 3, 10_000);
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(false);
    expect(await lab.connect('198.51.100.10', 80)).toBe(true);
  });

  it('reset deletes the table and says what it held', async () => {
    await daemon!.stop();
    daemon = undefined;
    const result = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'reset'], { reject: false });
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(result.stdout).toMatch(/^removed: table inet on-his-name \(allow4: 3 addresses, allow6: 0 addresses, p-refused-4: 0 addresses, p-refused-6: 0 addresses, 6 chain\(s\)\)$/m);
    expect((await execa('ip', ['netns', 'exec', lab.host.name, 'nft', 'list', 'table', 'inet', 'on-his-name'], { reject: false })).exitCode).not.toBe(0);
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(true);
  });
});

describe.skipIf(!canUseNamespaces() || !hasNft)(`a DOCKER-USER that nothing jumps to${note}`, () => {
  let dir: string;
  let socket: string;
  let lab: FirewallLab;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-nojump-'));
    await chmod(dir, 0o755);
    socket = join(dir, 'dnstap.sock');
    lab = await createFirewallLab({ dnstapSocket: socket, hostFirewall: 'unjumped-docker-user' });
  }, 60_000);

  afterAll(async () => {
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses --backend iptables, naming the fix, instead of writing rules no packet meets', async () => {
    const result = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, '--interface', BRIDGE, '--listen', socket, '--backend', 'iptables', 'allowed.test.'], { reject: false });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^on-his-name: FORWARD does not jump to DOCKER-USER for ohnbr0.*use --backend nftables/m);
    expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(true); // nothing was installed: still Docker's open bridge
  });

  it('auto does not fail open: it picks nftables and filters', async () => {
    const daemon = startCli(lab.host.name, ['--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--log-level', 'debug', 'allowed.test.']);
    try {
      await daemon.waitFor((l) => l.msg === 'on-his-name is running');
      expect(daemon.lines.find((l) => String(l.msg).startsWith('filtering with'))).toMatchObject({ backend: 'nftables', reason: 'DOCKER-USER exists but FORWARD does not jump to it, so its rules are never met' });
      expect(await lab.connect('203.0.113.10', 80, QUICK)).toBe(false);
      await lab.startDns();
      await daemon.waitFor((l) => l.msg === 'producer connected');
      expect(await lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
      expect(await lab.connect('198.51.100.10', 80, { timeoutSeconds: 6 })).toBe(true);
    } finally {
      await daemon.stop();
    }
  });
});

describe.skipIf(!canUseNamespaces() || !hasNft)(`expiry in the kernel with the nftables backend${note}`, () => {
  const ns = `ohn-nftx-${process.pid}`;
  afterAll(async () => {
    await execa('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  it('closes an address on time while the daemon is down: the element carries its own timeout', async () => {
    await execa('ip', ['netns', 'add', ns]);
    const runner = nftRunner({ prefix: ['ip', 'netns', 'exec', ns], persistent: true });
    const table = new NftTable(runner, { bridge: 'br0', ports: [{ protocol: 'tcp', port: 443 }], hostPorts: [], 4: { subnets: ['192.0.2.0/24'], dns: [] }, 6: { subnets: [], dns: [] } });
    const firewall = new Firewall({ backend: new NftablesBackend({ table, family: 4 }), log: pino({ level: 'silent' }), minTtl: 1, ttlGrace: 1 });
    await firewall.start();
    firewall.allow('198.51.100.7', 'short.test.', 0);
    await firewall.settled();
    firewall.stop();
    runner.close();
    const listed = () => execa('ip', ['netns', 'exec', ns, 'nft', 'list', 'set', 'inet', 'on-his-name', 'allow4']).then((r) => r.stdout);
    expect(await listed()).toContain('198.51.100.7');
    const deadline = Date.now() + 10_000;
    while ((await listed()).includes('198.51.100.7') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await listed()).not.toContain('198.51.100.7');
  });
});
