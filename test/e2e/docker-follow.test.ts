/**
 * The network re-created under a running on-his-name, on a real dockerd: the firewall
 * moves to the new bridge, survives a dockerd restart, and --wait-for-network starts once
 * the network appears.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { NETWORK, createDockerLab, type DockerLab } from '../lab/docker-lab.js';
import { unboundUid } from '../lab/unbound.js';
import { startCli, type CliProcess } from '../support/cli-process.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const PATTERNS = ['allowed.test.'];
const hasDocker = () => execa('sh', ['-c', 'command -v dockerd'], { reject: false }).then((r) => r.exitCode === 0);
/** Our rules, by the bridge they name. */
const ownedBridges = (rules: readonly string[]) => [...new Set(rules.filter((l) => l.includes('on-his-name')).map((l) => /-i (\S+)/.exec(l)?.[1]))].sort();

describe.skipIf(!canUseNamespaces())(`following a re-created Docker network${skipNote()}`, () => {
  let lab: DockerLab;
  let waiting: CliProcess | undefined;

  const bridgeOf = async () => {
    const { stdout } = await lab.dockerd.docker(['network', 'inspect', NETWORK, '--format', '{{.Id}}']);
    return `br-${stdout.trim().slice(0, 12)}`;
  };

  beforeAll(async () => {
    if (!(await hasDocker())) throw new Error('dockerd not found: apt-get install docker.io (CI installs it)');
    lab = await createDockerLab();
    await lab.startDaemon(PATTERNS, ['--log-level', 'debug']);
    await lab.startDns();
    await lab.daemon()!.waitFor((l) => l.msg === 'producer connected', 15_000);
  }, 180_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      console.error(`${await lab.listing()}\n\ndaemon log:\n${lab.daemon()?.output()}\n${waiting?.output() ?? ''}`);
    }
  });

  afterAll(async () => {
    await waiting?.stop();
    await lab?.close();
  }, 120_000);

  it('moves to the bridge of a re-created network, rides out a dockerd restart, and --wait-for-network starts when the network appears', async () => {
    expect((await lab.curl('http://allowed.test/')).output).toContain('hello from 198.51.100.10:80');
    const daemon = lab.daemon()!;
    const old = lab.network.bridge;
    expect(ownedBridges(await lab.rules())).toEqual([old]);

    await lab.dockerd.docker(['network', 'rm', NETWORK]);
    await daemon.waitFor((l) => l.msg === `network ${NETWORK} is gone; waiting for it: docker network create ${NETWORK}`, 15_000);
    // Same subnet and gateway, so that the lab's DNS server (bound to the gateway) and --dns stay right.
    await lab.dockerd.docker(['network', 'create', '--subnet', lab.network.subnet, '--gateway', lab.network.gateway, NETWORK]);
    const bridge = await bridgeOf();
    expect(bridge).not.toBe(old);
    await daemon.waitFor((l) => String(l.msg).startsWith('moved our rules to the new bridge') && l.to === bridge, 15_000);

    const rules = await lab.rules();
    expect(ownedBridges(rules)).toEqual([bridge]);
    expect(rules.filter((l) => l.includes(`-d 198.51.100.10/32 -i ${bridge}`))).toHaveLength(2);
    expect(rules.filter((l) => l.includes(`-i ${bridge}`) && l.includes('default-drop'))).toHaveLength(1);
    // A new container on the re-created network: the allowed name works, a denied one times out.
    expect((await lab.curl('http://allowed.test/')).output).toContain('hello from 198.51.100.10:80');
    expect((await lab.curl('http://denied.test/', { timeoutSeconds: 3 })).ok).toBe(false);
    expect((await lab.curl('http://198.51.100.14/', { timeoutSeconds: 3 })).ok).toBe(false);

    // dockerd restarts under the running daemon: it reconnects, reconciles, and keeps one block.
    await lab.dockerd.restart();
    await daemon.waitFor((l) => l.msg === "following Docker's events again", 30_000);
    await daemon.waitFor((l) => String(l.msg).startsWith("Docker's event stream ended"));
    const afterRestart = await lab.rules();
    expect(ownedBridges(afterRestart)).toEqual([bridge]);
    expect(new Set(afterRestart).size).toBe(afterRestart.length);
    expect((await lab.curl('http://allowed.test/')).ok).toBe(true);
    expect((await lab.curl('http://denied.test/', { timeoutSeconds: 3 })).ok).toBe(false);

    // --wait-for-network: started while the network is missing, it waits, then starts on the new one.
    await daemon.stop();
    await lab.dockerd.docker(['network', 'rm', NETWORK]);
    const args = ['--network', NETWORK, '--listen', lab.dnstapSocket, '--socket-uid', String(await unboundUid()), '--wait-for-network', ...PATTERNS];
    waiting = startCli(lab.host.name, args, lab.dockerd.env);
    await waiting.waitFor((l) => String(l.msg).startsWith(`waiting for network ${NETWORK}`), 15_000);
    await lab.dockerd.docker(['network', 'create', '--subnet', lab.network.subnet, '--gateway', lab.network.gateway, NETWORK]);
    await waiting.waitFor((l) => l.msg === 'on-his-name is running', 20_000);
    const third = await bridgeOf();
    expect(ownedBridges(await lab.rules()).includes(third)).toBe(true);
    expect((await lab.rules()).filter((l) => l.includes(`-i ${third}`) && l.includes('default-drop'))).toHaveLength(1);
    expect((await lab.curl('http://denied.test/', { timeoutSeconds: 3 })).ok).toBe(false);
  }, 240_000);
});
