/**
 * Inline DNS mode on a real dockerd: containers use on-his-name (on the network gateway)
 * as their DNS server through Docker's embedded DNS; it forwards to unbound on loopback
 * and answers only once the rules are in, so a fresh name connects on its first SYN.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECORDS } from '../lab/firewall-lab.js';
import { UPSTREAM_PORT, createDockerLab, type DockerLab } from '../lab/docker-lab.js';
import { SYN_RETRANSMITS_SH } from '../lab/syn-retransmits.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const FRESH = Array.from({ length: 10 }, (_, i) => ({ name: `fresh${i}`, type: 'A' as const, value: `198.51.100.${120 + i}` }));
const hasDocker = () => execa('sh', ['-c', 'command -v dockerd'], { reject: false }).then((r) => r.exitCode === 0);

describe.skipIf(!canUseNamespaces())(`inline DNS mode with a real dockerd${skipNote()}`, () => {
  let lab: DockerLab;

  beforeAll(async () => {
    if (!(await hasDocker())) throw new Error('dockerd not found: apt-get install docker.io (CI installs it)');
    lab = await createDockerLab({ records: [...DEFAULT_RECORDS, ...FRESH], internetAddresses: FRESH.map((r) => r.value) });
    await lab.startUpstreamDns();
    await lab.startDaemon(['allowed.test.', 'fresh*.test.'], ['--dns-listen', 'gateway', '--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`, '--deny-nxdomain']);
  }, 180_000);

  printOnFailure(async () => firewallReport((await lab.listing()).split('\n'), lab.daemon()?.output()));

  afterAll(async () => {
    await lab?.close();
  }, 120_000);

  it('connects to every fresh name on the first SYN, and names the container in each decision', async () => {
    const script = FRESH.map((r) => `curl -s -o /dev/null --max-time 5 -w '%{http_code} ' http://${r.name}.test/`).join('; ');
    const result = await lab.run(['sh', '-c', `${script}; ${SYN_RETRANSMITS_SH}`], { timeoutSeconds: 60 });
    const words = result.output.trim().split(/\s+/);
    expect(words.slice(0, FRESH.length)).toEqual(FRESH.map(() => '200'));
    expect(words.at(-1)).toBe('0'); // SYN retransmits counted by the container's kernel
    const allows = lab.daemon()!.lines.filter((l) => l.msg === 'allow');
    expect(allows).toHaveLength(FRESH.length);
    for (const line of allows) expect(String(line.client)).toMatch(new RegExp(`^${lab.network.subnet.split('.').slice(0, 2).join('\\.')}\\.`));
  });

  it('answers NXDOMAIN for a denied name with --deny-nxdomain, and a hard-coded address stays blocked', async () => {
    const denied = await lab.run(['nslookup', 'denied.test'], { timeoutSeconds: 10 });
    expect(denied.output).toMatch(/NXDOMAIN/);
    const direct = await lab.curl('http://203.0.113.10/', { timeoutSeconds: 3 });
    expect(direct.ok).toBe(false);
  });
});
