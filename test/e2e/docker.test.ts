/**
 * The blog's scene on a real dockerd in namespaces: containers on the on-his-name network
 * reach allowed names and nothing else; everything else on the host is untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { containersOnNetwork, inspectedContainer } from '../../src/docker/containers.js';
import { firewallBackendDriver } from '../../src/docker/info.js';
import { NETWORK, createDockerLab, type DockerLab } from '../lab/docker-lab.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { execa } from 'execa';

const PATTERNS = ['allowed.test.', 'multi.test.', 'alias.test.'];
const FOREIGN = ['-I', 'DOCKER-USER', '-d', '203.0.113.99/32', '-m', 'comment', '--comment', 'someone-else', '-j', 'REJECT'];
const hasDocker = () => execa('sh', ['-c', 'command -v dockerd'], { reject: false }).then((r) => r.exitCode === 0);

describe.skipIf(!canUseNamespaces())(`on-his-name with a real dockerd${skipNote()}`, () => {
  let lab: DockerLab;

  beforeAll(async () => {
    if (!(await hasDocker())) throw new Error('dockerd not found: apt-get install docker.io (CI installs it)');
    lab = await createDockerLab();
    await lab.iptables(...FOREIGN);
    await lab.startDaemon(PATTERNS, ['--log-level', 'debug']);
    await lab.startDns();
    await lab.daemon()!.waitFor((l) => l.msg === 'producer connected', 15_000);
  }, 180_000);

  printOnFailure(async () => firewallReport((await lab.listing()).split('\n'), lab.daemon()?.output()));

  afterAll(async () => {
    await lab?.close();
  }, 120_000);

  it('resolves the bridge by network name and logs the gateway to use as --dns', async () => {
    const line = await lab.daemon()!.waitFor((l) => typeof l.dns === 'string');
    expect(line).toMatchObject({ network: NETWORK, bridge: lab.network.bridge, dns: lab.network.gateway });
  });

  it('lets a container fetch an allowed name, over http and https', async () => {
    const result = await lab.curl('http://allowed.test/');
    expect(result.output).toContain('hello from 198.51.100.10:80');
    expect((await lab.curl('https://allowed.test/')).output).toContain('hello from 198.51.100.10:443');
    expect(await lab.daemon()!.waitFor((l) => l.msg === 'allow' && l.name === 'allowed.test.')).toMatchObject({ client: expect.stringMatching(/^\d+\./) });
  });

  it('times out on a name that is not allowed', async () => {
    const result = await lab.curl('http://denied.test/', { timeoutSeconds: 3 });
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/timed out|Connection timed out/i);
  });

  it('does not affect a container on the default network', async () => {
    const result = await lab.curl('http://denied.test/', { network: 'default' });
    expect(result.output).toContain('hello from 203.0.113.10:80');
  });

  it('blocks a hard-coded address that no allowed name resolved to', async () => {
    expect((await lab.curl('http://198.51.100.14/', { timeoutSeconds: 3 })).ok).toBe(false);
  });

  it('opens every address of a multi-address name, and the target of a CNAME', async () => {
    expect((await lab.curl('http://multi.test/')).ok).toBe(true);
    expect((await lab.curl('http://198.51.100.11/')).output).toContain('hello from 198.51.100.11:80');
    expect((await lab.curl('http://198.51.100.12:443/')).output).toContain('hello from 198.51.100.12:443');
    expect((await lab.curl('http://alias.test/')).output).toContain('hello from 198.51.100.13:80');
  });

  it('keeps port 8080 closed on an allowed address', async () => {
    expect((await lab.curl('http://allowed.test:8080/', { timeoutSeconds: 3 })).ok).toBe(false);
  });

  it('lets containers of the same network talk to each other', async () => {
    const server = await lab.dockerd.docker(['run', '-d', '--rm', '--network', NETWORK, '--name', 'peer', lab.image, 'sh', '-c', "while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello from peer\\n' | nc -l -p 8000; done"]);
    try {
      expect((await lab.curl('http://peer:8000/')).output).toContain('hello from peer');
    } finally {
      await lab.dockerd.docker(['rm', '-f', server.stdout.trim()], { reject: false });
    }
  });

  it("reads what per-container policies need from this dockerd's API: containers with labels and addresses, and /info", async () => {
    const docker = new DockerClient({ transport: 'unix', path: lab.dockerd.socket });
    const started = await lab.dockerd.docker(['run', '-d', '--rm', '--network', NETWORK, '--name', 'labelled', '--label', 'on-his-name.test=yes', lab.image, 'sleep', '60']);
    const id = started.stdout.trim();
    try {
      const network = { name: NETWORK, id: (await docker.getNetwork(NETWORK).inspect()).Id };
      const listed = (await containersOnNetwork(docker, network)).find((c) => c.id === id);
      expect(listed).toEqual({ id, name: 'labelled', labels: { 'on-his-name.test': 'yes' }, ipv4: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/) });
      expect(inspectedContainer(await docker.inspectContainer(id), network)).toEqual(listed);
      const info = await docker.info();
      expect(info.ServerVersion).toMatch(/^\d+\./);
      // Docker 29 and later name their firewall backend; older ones (Debian 12's 20.10) say nothing.
      if (Number(info.ServerVersion!.split('.')[0]) < 29) expect(firewallBackendDriver(info)).toBeUndefined();
      else expect(firewallBackendDriver(info)).toMatch(/iptables|nftables/);
    } finally {
      await lab.dockerd.docker(['rm', '-f', id], { reject: false });
    }
  });

  it('still answers the internet on a published port', async () => {
    const server = await lab.dockerd.docker(['run', '-d', '--rm', '--network', NETWORK, '-p', '8081:8000', lab.image, 'sh', '-c', "while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\npublished\\n' | nc -l -p 8000; done"]);
    try {
      const fromInternet = await execa('ip', ['netns', 'exec', lab.internet.name, 'curl', '-sS', '--max-time', '5', 'http://198.51.100.1:8081/'], { reject: false });
      expect(fromInternet.stdout).toContain('published');
    } finally {
      await lab.dockerd.docker(['rm', '-f', server.stdout.trim()], { reject: false });
    }
  });

  it("keeps rules someone else put in DOCKER-USER, and shows ACCEPT counters ahead of the DROP", async () => {
    const rules = await lab.rules();
    expect(rules).toContain('-A DOCKER-USER -d 203.0.113.99/32 -m comment --comment someone-else -j REJECT --reject-with icmp-port-unreachable');
    const listing = await lab.listing();
    const accept = listing.split('\n').find((l) => l.includes('198.51.100.10') && l.includes('dpt:http '));
    expect(Number(accept?.trim().split(/\s+/)[0])).toBeGreaterThan(0);
    expect(listing.indexOf('198.51.100.10')).toBeLessThan(listing.indexOf('default-drop'));
  });

  it('stays closed and adds no duplicate across a restart of on-his-name and of dockerd', async () => {
    const before = await lab.rules();
    await lab.startDaemon(PATTERNS, ['--log-level', 'debug']);
    expect(lab.daemon()!.lines.find((l) => l.msg === 'adopted existing rules in DOCKER-USER')).toMatchObject({ rebuilt: false });
    expect(await lab.rules()).toEqual(before);

    await lab.daemon()!.stop();
    await lab.dockerd.restart();
    expect((await lab.curl('http://denied.test/', { timeoutSeconds: 3 })).ok).toBe(false);
    await lab.startDaemon(PATTERNS, ['--log-level', 'debug']);
    await lab.daemon()!.waitFor((l) => l.msg === 'producer connected', 20_000);
    expect((await lab.curl('http://allowed.test/')).ok).toBe(true);
    expect((await lab.curl('http://denied.test/', { timeoutSeconds: 3 })).ok).toBe(false);
    const after = await lab.rules();
    expect(after.filter((l) => l.includes('on-his-name')).sort()).toEqual(before.filter((l) => l.includes('on-his-name')).sort());
    expect(new Set(after).size).toBe(after.length);
  });
});
