/**
 * The blog's scene, for real and offline, in one command: `sudo npm run demo`.
 *
 * Builds a Docker lab in network namespaces (a private dockerd, the on-his-name network,
 * unbound with dnstap on its gateway, an "internet" at documentation addresses), starts
 * on-his-name by network name as the README tells, and shows what containers can reach.
 * `npm run demo` first installs what the demo needs (predemo: scripts/setup.sh demo);
 * run directly, this file installs nothing and says what is missing. Everything it
 * creates is removed at the end, on failure and on Ctrl-C.
 *
 * `sudo npm run demo -- --inline` plays the same scene in inline DNS mode: on-his-name
 * answers the containers' DNS on the gateway and forwards to unbound on loopback.
 */
import { execa } from 'execa';
import { createDockerLab, NETWORK, UPSTREAM_PORT, type DockerLab } from '../test/lab/docker-lab.js';

const PATTERNS = ['allowed.test.', '*.cdn.test.'];
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
  const lab = await createDockerLab({ progress });
  const stop = () => void lab.close().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await scene(lab);
    return 0;
  } finally {
    step('Cleaning up: containers, dockerd, the DNS server, namespaces');
    await lab.close();
    console.log('  done, nothing left behind');
  }
}

async function scene(lab: DockerLab): Promise<void> {
  const gw = lab.network.gateway;
  if (INLINE) await startInline(lab);
  else await startBesideDnstap(lab);

  await show(lab, 'An allowed name: the fetch succeeds', `docker run --network=${NETWORK} --dns=${gw} IMAGE curl https://allowed.test/`, () => lab.curl('https://allowed.test/'), true);
  await show(lab, 'A name not on the list: resolved, but the connection times out', `docker run --network=${NETWORK} --dns=${gw} IMAGE curl --max-time 4 http://denied.test/`, () => lab.curl('http://denied.test/', { timeoutSeconds: 4 }), false);
  await show(lab, 'The default network is not affected', `docker run --dns=${gw} IMAGE curl http://denied.test/`, () => lab.curl('http://denied.test/', { network: 'default' }), true);
  await show(lab, 'A hard-coded address that no allowed name resolved to: blocked', `docker run --network=${NETWORK} IMAGE curl --max-time 4 http://198.51.100.14/`, () => lab.curl('http://198.51.100.14/', { timeoutSeconds: 4 }), false);

  step('iptables -vL DOCKER-USER   (per-address ACCEPT counters ahead of the DROP)');
  console.log(await lab.listing());
  step('What on-his-name logged');
  for (const line of lab.daemon()?.lines.filter((l) => l.msg === 'allow' || l.msg === 'deny') ?? []) {
    const opened = line.msg === 'allow' ? `  opened ${(line.added as string[]).join(', ')}` : '';
    console.log(`  ${line.msg.padEnd(5)} ${String(line.name).padEnd(16)} client ${line.client}${opened}`);
  }
}

async function startBesideDnstap(lab: DockerLab): Promise<void> {
  step(`on-his-name ${PATTERNS.map((p) => `"${p}"`).join(' ')}   (network ${NETWORK}, bridge ${lab.network.bridge})`);
  await lab.startDaemon(PATTERNS);
  const dns = await lab.startDns();
  progress(`containers use --dns=${lab.network.gateway}; ${dns.kind === 'coredns' ? 'CoreDNS' : 'unbound'} answers there and reports every answer over dnstap`);
  await new Promise((r) => setTimeout(r, 1500)); // let unbound connect to the dnstap socket
}

async function startInline(lab: DockerLab): Promise<void> {
  const inline = ['--dns-listen', 'gateway', '--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`];
  await lab.startUpstreamDns();
  step(`on-his-name ${inline.join(' ')} ${PATTERNS.map((p) => `"${p}"`).join(' ')}   (inline DNS mode)`);
  await lab.startDaemon(PATTERNS, inline);
  progress(`containers use --dns=${lab.network.gateway}; on-his-name answers there, forwarding to unbound, and holds each allowed answer until its rules are in`);
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
