/**
 * Policies per container on a real dockerd: containers on the on-his-name network pick a
 * policy with labels, as a compose file would give them, and each reaches only its own
 * names on its own ports, in inline mode and beside dnstap.
 *
 *   web    --label on-his-name.allow=allowed.test.   its own policy (c-<id>): allowed.test on 80 and 443
 *   ci     --label on-his-name.policy=ci             the file's policy: registry.test on 80 only
 *   typo   --label on-his-name.policy=cii            names no policy: the refusing one, nothing opens
 *   typokey --label on-his-name.polcy=ci             a label key we do not read: refused the same way
 *   plain  no label                                  the default policy: public.test (the command line)
 *
 * A probe is a curl from inside the container: 0 when the exchange completed, 28 when the
 * connection timed out (resolved, then dropped by the kernel). Containers are probed once
 * the daemon has said which policy they have (its log line comes once the route is in the
 * kernel): that is the contract, "from the moment the event arrives". The address re-used
 * by a container of another policy is probed from its very first command instead: whatever
 * the daemon knows at that moment, the old container's addresses must stay closed.
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECORDS } from '../lab/firewall-lab.js';
import { NETWORK, UPSTREAM_PORT, createDockerLab, type DockerLab } from '../lab/docker-lab.js';
import { CLI } from '../support/cli-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const RECORDS = [...DEFAULT_RECORDS, { name: 'registry', type: 'A' as const, value: '198.51.100.11' }, { name: 'public', type: 'A' as const, value: '198.51.100.12' }];
const SUBNET = '172.29.0.0/24';
const GATEWAY = '172.29.0.1';
/** The fixed address two containers take one after the other. */
const REUSED = '172.29.0.200';
const ADMIN_PORT = '9731';
const POLICY_FILE = `
ports: [80, 443]
policies:
  ci:
    allow: ["registry.test."]
    ports: [80]
`;
const DEFAULT_PATTERNS = ['public.test.'];

const OK = 0;
const TIMED_OUT = 28;
const hasDocker = () => execa('sh', ['-c', 'command -v dockerd'], { reject: false }).then((r) => r.exitCode === 0);

/** Arguments SECONDS URL SECONDS URL…: curl each URL in turn, within its seconds; prints "URL=EXIT" per line. */
const PROBE_SH = 'while [ $# -gt 1 ]; do curl -sk -o /dev/null --connect-timeout "$1" --max-time "$1" "$2"; echo "$2=$?"; shift 2; done';

const MODES = [
  { mode: 'inline', args: ['--dns-listen', 'gateway', '--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`] },
  { mode: 'dnstap push', args: [] },
] as const;

describe.skipIf(!canUseNamespaces()).each(MODES)(`policies per container on a real dockerd, $mode${skipNote()}`, ({ mode, args }) => {
  let lab: DockerLab;
  let dir: string;

  beforeAll(async () => {
    if (!(await hasDocker())) throw new Error('dockerd not found: apt-get install docker.io (CI installs it)');
    dir = await mkdtemp(join(tmpdir(), 'ohn-policies-'));
    await writeFile(join(dir, 'policies.yaml'), POLICY_FILE);
    lab = await createDockerLab({ records: RECORDS, subnet: SUBNET });
    expect(lab.network.gateway).toBe(GATEWAY);
    const flags = ['--log-level', 'debug', '--policy', join(dir, 'policies.yaml'), '--admin-listen', ADMIN_PORT, ...args];
    if (mode === 'inline') {
      await lab.startUpstreamDns();
      await lab.startDaemon(DEFAULT_PATTERNS, flags);
    } else {
      await lab.startDaemon(DEFAULT_PATTERNS, flags);
      await lab.startDns();
      await lab.daemon()!.waitFor((l) => l.msg === 'producer connected', 15_000);
    }
  }, 180_000);

  printOnFailure(async () => firewallReport((await lab.iptables('-S')).split('\n'), lab.daemon()?.output()));

  afterAll(async () => {
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  const daemon = () => lab.daemon()!;
  /** The daemon's line for a container it has just learned of: its policy, or why it opens nothing. */
  const known = (name: string) => daemon().waitFor((l) => l.container === name, 15_000);

  /** A long-lived container on the network, asking DNS on the gateway; resolves once the daemon knows its policy. */
  async function start(name: string, labels: readonly string[], options: { ip?: string; command?: string } = {}) {
    const ip = options.ip ? ['--ip', options.ip] : [];
    const command = options.command ?? 'sleep 300';
    await lab.dockerd.docker(['run', '-d', '--name', name, '--network', NETWORK, '--dns', GATEWAY, ...ip, ...labels.flatMap((l) => ['--label', l]), lab.image, 'sh', '-c', command]);
    if (labels.length > 0) return known(name);
    return undefined;
  }

  /**
   * Curls each URL from inside the container and expects its exit code: a URL expected to
   * connect gets time for a SYN retransmit (dnstap reports an answer after the client has it),
   * one expected to time out gets 2 s.
   */
  async function expectReach(name: string, expected: Record<string, number>): Promise<void> {
    const pairs = Object.entries(expected).flatMap(([url, code]) => [String(code === OK ? 5 : 2), url]);
    const { stdout } = await lab.dockerd.docker(['exec', name, 'sh', '-c', PROBE_SH, 'probe', ...pairs], { timeoutMs: 120_000 });
    expect(results(stdout), `what ${name} reached`).toEqual(expected);
  }

  it('gives each container the policy its labels name: each reaches only its own names, on its own ports', async () => {
    const web = await start('web', ['on-his-name.allow=allowed.test.']);
    expect(web).toMatchObject({ level: 30, policy: expect.stringMatching(/^c-[0-9a-f]{12}$/) });
    expect(await start('ci', ['on-his-name.policy=ci'])).toMatchObject({ level: 30, policy: 'ci' });
    await start('plain', []);

    // web first, so that allowed.test is open (for web) when ci asks for it too.
    await expectReach('web', { 'http://allowed.test/': OK, 'https://allowed.test/': OK, 'http://registry.test/': TIMED_OUT, 'http://public.test/': TIMED_OUT });
    await Promise.all([
      expectReach('ci', {
        'http://registry.test/': OK,
        'https://registry.test/': TIMED_OUT, // ci's ports are [80]
        'http://allowed.test/': TIMED_OUT, // ci resolves it too, but it is open for web only
        'http://198.51.100.10/': TIMED_OUT,
        'http://public.test/': TIMED_OUT,
      }),
      expectReach('plain', { 'http://public.test/': OK, 'http://allowed.test/': TIMED_OUT, 'http://registry.test/': TIMED_OUT }),
    ]);

    // Each decision names the policy of the container that asked.
    const allows = daemon().lines.filter((l) => l.msg === 'allow').map((l) => `${l.name} ${l.policy}`);
    expect(allows.sort()).toEqual([`allowed.test. ${web!.policy}`, 'public.test. default', 'registry.test. ci']);
  }, 120_000);

  it('gives a container whose label names no policy, or whose label key is misspelt, nothing at all, and says why in one line', async () => {
    const typo = await start('typo', ['on-his-name.policy=cii']);
    expect(typo).toMatchObject({ level: 40, policy: 'refused', msg: 'container typo opens nothing: on-his-name.policy=cii names no policy of the policy file (ci)' });
    const key = await start('typokey', ['on-his-name.polcy=ci']);
    expect(key).toMatchObject({ level: 40, policy: 'refused', msg: 'container typokey opens nothing: unknown label on-his-name.polcy: on-his-name reads on-his-name.policy, on-his-name.allow, on-his-name.ports' });
    expect(daemon().lines.filter((l) => /cii|polcy/.test(JSON.stringify(l)))).toHaveLength(2);
    // Not the default policy's name either, nor an address open for another container.
    const nothing = { 'http://public.test/': TIMED_OUT, 'http://registry.test/': TIMED_OUT, 'http://allowed.test/': TIMED_OUT, 'http://198.51.100.12/': TIMED_OUT };
    await Promise.all([expectReach('typo', nothing), expectReach('typokey', nothing)]);
  }, 60_000);

  it('status names the policy and the container of each open address, and who has which policy', async () => {
    const { stdout } = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'status', '--admin-listen', ADMIN_PORT]);
    const rows = stdout.split('\n').map((l) => l.trim().split(/\s{2,}/));
    const ipOf = async (name: string) => (await lab.dockerd.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`, name])).stdout.trim();
    const webPolicy = `c-${(await lab.dockerd.docker(['inspect', '-f', '{{.Id}}', 'web'])).stdout.trim().slice(0, 12)}`;
    // ADDRESS NAME POLICY CLIENT CONTAINER …
    const open = (address: string) => rows.find((r) => r[0] === address)?.slice(0, 5);
    expect(open('198.51.100.10')).toEqual(['198.51.100.10', 'allowed.test.', webPolicy, await ipOf('web'), 'web']);
    expect(open('198.51.100.11')).toEqual(['198.51.100.11', 'registry.test.', 'ci', await ipOf('ci'), 'ci']);
    expect(open('198.51.100.12')).toEqual(['198.51.100.12', 'public.test.', 'default', await ipOf('plain'), 'plain']);
    // POLICY PORTS CLIENTS PATTERNS, the first table.
    const policy = (name: string) => rows.find((r) => r[0] === name);
    expect(policy(webPolicy)).toEqual([webPolicy, 'tcp/80 tcp/443', 'web', 'allowed.test.']);
    expect(policy('ci')).toEqual(['ci', 'tcp/80', 'ci', 'registry.test.']);
    const [, ports, who, patterns] = policy('refused')!;
    expect([ports, who!.split(' ').sort(), patterns]).toEqual(['-', ['typo', 'typokey'], '(none: opens nothing)']); // in Docker's order
    expect(stdout).toContain('Container typo opens nothing: on-his-name.policy=cii names no policy of the policy file (ci).');
  });

  it("keeps the old policy's addresses closed to a container that takes its address, from its first command", async () => {
    await start('before', ['on-his-name.policy=ci'], { ip: REUSED });
    await expectReach('before', { 'http://registry.test/': OK });
    await lab.dockerd.docker(['stop', '-t', '0', 'before']);
    await lab.dockerd.docker(['rm', 'before']);

    // Its first command probes what 'before' reached, by address and by name, twice.
    const first = ['http://198.51.100.11/', 'http://registry.test/', 'http://198.51.100.11/', 'http://registry.test/'];
    const script = `set -- ${first.map((u) => `1 ${u}`).join(' ')}; ${PROBE_SH}; echo done; sleep 300`;
    const after = await start('after', ['on-his-name.allow=allowed.test.'], { ip: REUSED, command: script });
    expect(after).toMatchObject({ addresses: [REUSED], policy: expect.stringMatching(/^c-/) });
    const logs = await untilLogs('after', /^done$/m);
    expect(logs.match(/^\S+=\d+$/gm)).toEqual(first.map((u) => `${u}=${TIMED_OUT}`));

    // And once its own policy is in: its own name, still none of the old one's.
    await expectReach('after', { 'http://allowed.test/': OK, 'http://registry.test/': TIMED_OUT, 'http://198.51.100.11/': TIMED_OUT });
  }, 90_000);

  /** The container's output once it matches (its probes are done), read as Docker keeps it. */
  async function untilLogs(name: string, done: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { stdout } = await lab.dockerd.docker(['logs', name]);
      if (done.test(stdout)) return stdout;
      if (Date.now() > deadline) throw new Error(`${name} did not finish its probes within ${timeoutMs} ms:\n${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

/** "URL=EXIT" lines as { URL: EXIT }. */
function results(output: string): Record<string, number> {
  return Object.fromEntries([...output.matchAll(/^(\S+)=(\d+)$/gm)].map(([, url, code]) => [url!, Number(code)]));
}
