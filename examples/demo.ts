/**
 * The blog's scene, for real and offline, in one command: `sudo npm run demo`.
 *
 * Builds a Docker lab in network namespaces (a private dockerd, the on-his-name network,
 * unbound with dnstap on its gateway, an "internet" at documentation addresses), starts
 * on-his-name by network name as the README tells, and shows what containers can reach;
 * then two services whose labels give each its own policy (as examples/compose.yaml does),
 * and `on-his-name status` naming the policy and the container of every open address.
 * `npm run demo` first installs what the demo needs (predemo: scripts/setup.sh demo);
 * run directly, this file installs nothing and says what is missing. Everything it
 * creates is removed at the end, on failure and on Ctrl-C.
 *
 * `sudo npm run demo -- --inline` plays the same scene in inline DNS mode: on-his-name
 * answers the containers' DNS on the gateway and forwards to unbound on loopback.
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDockerLab, NETWORK, UPSTREAM_PORT, type DockerLab, type RunResult } from '../test/lab/docker-lab.js';
import { DEFAULT_RECORDS } from '../test/lab/firewall-lab.js';
import { CLI } from '../test/support/cli-process.js';

const PATTERNS = ['allowed.test.', '*.cdn.test.'];
/** The policy file: the default policy is PATTERNS, and a container labelled on-his-name.policy=ci may reach registry.test only. */
const POLICIES = 'policies:\n  ci:\n    allow: ["registry.test."]\n';
const RECORDS = [...DEFAULT_RECORDS, { name: 'registry', type: 'A' as const, value: '198.51.100.11' }];
const ADMIN = '9730';
const INLINE = process.argv.includes('--inline');
const REQUIRED: ReadonlyArray<[tool: string, pkg: string]> = [
  ['dockerd', 'docker.io'],
  ['docker', 'docker.io'],
  ['unbound', 'unbound'],
  ['dig', 'dnsutils'],
  ['curl', 'curl'],
  ['busybox', 'busybox-static'],
  ['iptables', 'iptables'],
  ['nsenter', 'util-linux'],
];

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string) => console.log(`\n${bold(`▶ ${s}`)}`);
const progress = (s: string) => console.log(`  … ${s}`);

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('The demo builds network namespaces and runs dockerd: run it as root (sudo npm run demo).');
    return 1;
  }
  const missing = await missingTools();
  if (missing.length) {
    console.error(`Missing: ${missing.map(([tool]) => tool).join(', ')}.`);
    console.error(`Install with: apt-get install ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`);
    return 1;
  }

  step('Building the lab (network namespaces; nothing on this host outside them is touched)');
  const dir = await mkdtemp(join(tmpdir(), 'ohn-demo-'));
  const lab = await createDockerLab({ progress, records: RECORDS }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const cleanUp = async () => {
    await lab.close();
    await rm(dir, { recursive: true, force: true });
  };
  const stop = () => void cleanUp().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await scene(lab, join(dir, 'policies.yaml'));
    return 0;
  } finally {
    step('Cleaning up: containers, dockerd, the DNS server, namespaces');
    await cleanUp();
    console.log('  done, nothing left behind');
  }
}

async function scene(lab: DockerLab, policyFile: string): Promise<void> {
  const gw = lab.network.gateway;
  await writeFile(policyFile, POLICIES);
  const options = ['--policy', policyFile, '--admin-listen', ADMIN];
  if (INLINE) await startInline(lab, options);
  else await startBesideDnstap(lab, options);

  await show(lab, 'An allowed name: the fetch succeeds', `docker run --network=${NETWORK} --dns=${gw} IMAGE curl https://allowed.test/`, () => lab.curl('https://allowed.test/'), true);
  await show(lab, 'A name not on the list: resolved, but the connection times out', `docker run --network=${NETWORK} --dns=${gw} IMAGE curl --max-time 4 http://denied.test/`, () => lab.curl('http://denied.test/', { timeoutSeconds: 4 }), false);
  if (INLINE) {
    // on-his-name answers DNS only to its own network's containers: the default network's reach denied.test's address as it is.
    await show(lab, 'The default network is not affected', 'docker run IMAGE curl http://203.0.113.10/   (denied.test\'s address)', () => lab.curl('http://203.0.113.10/', { network: 'default' }), true);
  } else {
    await show(lab, 'The default network is not affected', `docker run --dns=${gw} IMAGE curl http://denied.test/`, () => lab.curl('http://denied.test/', { network: 'default' }), true);
  }
  await show(lab, 'A hard-coded address that no allowed name resolved to: blocked', `docker run --network=${NETWORK} IMAGE curl --max-time 4 http://198.51.100.14/`, () => lab.curl('http://198.51.100.14/', { timeoutSeconds: 4 }), false);

  await services(lab);

  step('iptables -vL DOCKER-USER   (per-address ACCEPT counters ahead of the DROP)');
  console.log(await lab.listing());
  step('What on-his-name logged');
  for (const line of lab.daemon()?.lines.filter((l) => l.msg === 'allow' || l.msg === 'deny') ?? []) {
    const opened = line.msg === 'allow' ? `  opened ${(line.added as string[]).join(', ')}` : '';
    console.log(`  ${line.msg.padEnd(5)} ${String(line.name).padEnd(16)} policy ${String(line.policy).padEnd(14)} client ${line.client}${opened}`);
  }
}

/** Two services, each with its own policy by its labels, as examples/compose.yaml starts them. */
async function services(lab: DockerLab): Promise<void> {
  const gw = lab.network.gateway;
  step('Two services, two policies: each container\'s labels say what it may reach (examples/compose.yaml)');
  console.log(`  policies.yaml: ${POLICIES.trim().replace(/\n\s*/g, ' ')}`);
  for (const [name, label] of [['web', 'on-his-name.allow=allowed.test.'], ['ci', 'on-his-name.policy=ci']] as const) {
    console.log(`  $ docker run -d --name ${name} --network=${NETWORK} --dns=${gw} --label ${label} IMAGE sleep 600`);
    await lab.dockerd.docker(['run', '-d', '--name', name, '--network', NETWORK, '--dns', gw, '--label', label, lab.image, 'sleep', '600']);
    // Docker tells on-his-name once the container runs; its policy is in the kernel when it says so.
    progress(`on-his-name: ${String((await lab.daemon()!.waitFor((l) => l.container === name, 15_000)).msg)}`);
  }
  await show(lab, 'web fetches allowed.test: its own label allows it', 'docker exec web curl http://allowed.test/', () => curlFrom(lab, 'web', 'http://allowed.test/'), true);
  await show(lab, 'ci asks for the same name: refused, policy ci allows registry.test. only', 'docker exec ci curl --max-time 4 http://allowed.test/', () => curlFrom(lab, 'ci', 'http://allowed.test/', 4), false);
  await show(lab, 'ci fetches registry.test: its policy allows it', 'docker exec ci curl http://registry.test/', () => curlFrom(lab, 'ci', 'http://registry.test/'), true);

  step(`on-his-name status --admin-listen ${ADMIN}   (the POLICY and CONTAINER of every open address)`);
  const status = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'status', '--admin-listen', ADMIN], { reject: false });
  console.log(`${status.stdout}${status.stderr}`.replace(/^/gm, '  '));
}

/** curl in a running container; ok when the HTTP exchange completed. */
async function curlFrom(lab: DockerLab, container: string, url: string, seconds = 8): Promise<RunResult> {
  const started = Date.now();
  const result = await lab.dockerd.docker(['exec', container, 'curl', '-sS', '--max-time', String(seconds), url], { reject: false, timeoutMs: (seconds + 15) * 1000 });
  return { ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}`.trim(), seconds: (Date.now() - started) / 1000 };
}

async function startBesideDnstap(lab: DockerLab, options: readonly string[]): Promise<void> {
  step(`on-his-name ${shown(options)} ${PATTERNS.map((p) => `"${p}"`).join(' ')}   (network ${NETWORK}, bridge ${lab.network.bridge})`);
  await lab.startDaemon(PATTERNS, options);
  const dns = await lab.startDns();
  progress(`containers use --dns=${lab.network.gateway}; ${dns.kind === 'coredns' ? 'CoreDNS' : 'unbound'} answers there and reports every answer over dnstap`);
  await new Promise((r) => setTimeout(r, 1500)); // let unbound connect to the dnstap socket
}

async function startInline(lab: DockerLab, options: readonly string[]): Promise<void> {
  const inline = ['--dns-listen', 'gateway', '--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`, ...options];
  await lab.startUpstreamDns();
  step(`on-his-name ${shown(inline)} ${PATTERNS.map((p) => `"${p}"`).join(' ')}   (inline DNS mode)`);
  await lab.startDaemon(PATTERNS, inline);
  progress(`containers use --dns=${lab.network.gateway}; on-his-name answers there, forwarding to unbound, and holds each allowed answer until its rules are in`);
}

/** The command line as a person would type it: the policy file by its own name, not the temporary directory's. */
function shown(args: readonly string[]): string {
  return args.map((a) => a.replace(/^.*\/(policies\.yaml)$/, '$1')).join(' ');
}

async function show(lab: DockerLab, title: string, command: string, attempt: () => ReturnType<DockerLab['curl']>, expectSuccess: boolean) {
  step(title);
  console.log(`  $ ${command}`);
  const result = await attempt();
  const firstLine = result.output.split('\n').find((l) => l.trim()) ?? '';
  const verdict = result.ok ? `succeeded in ${result.seconds.toFixed(1)} s` : `failed after ${result.seconds.toFixed(1)} s`;
  console.log(`  ${firstLine}`);
  console.log(`  ${result.ok === expectSuccess ? '✔' : '✘ unexpected:'} ${verdict}`);
}

async function missingTools(): Promise<Array<[string, string]>> {
  const missing: Array<[string, string]> = [];
  for (const entry of REQUIRED) {
    if ((await execa('sh', ['-c', `command -v ${entry[0]}`], { reject: false })).exitCode !== 0) missing.push(entry);
  }
  return missing;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
