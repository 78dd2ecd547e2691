/**
 * Policies per service (issue 14) in the firewall lab, with the real CLI, unbound's dnstap
 * and real connections, on each backend. Two clients share the bridge:
 *
 *   container 0  192.0.2.10  the default policy: default-only.test, both.test on TCP 443
 *   container 1  192.0.2.11  policy web (a file range): web-only.test, both.test, kept.test
 *                             on TCP 80 and 7000 and UDP 7001
 *
 * A connection is "reached" when it is established, and "dropped" when the drop counter at
 * the end of the client's policy (default-drop, OHN-P-web's policy-drop, nft policy-NAME's
 * counter) moved while it was unanswered: a dropped SYN cannot be answered afterwards. The
 * kernel's sets and chains are read directly to see an address open or close.
 *
 * The forged-source test measures a known limit: the kernel tells clients apart by source
 * address only, so a client that sends from another client's address is judged by that
 * client's policy. A TCP connection cannot complete that way (the answer goes to the real
 * owner, which resets it), but a UDP datagram gets through.
 */
import { execa } from 'execa';
import { chmod, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BRIDGE, createFirewallLab, type FirewallLab } from '../lab/firewall-lab.js';
import { SCRIPTS, forgeAddress, probe, type Reach } from '../lab/hostile.js';
import { pollUntil, startInNamespace, startReady, type NsProcess } from '../lab/ns-process.js';
import { DEFAULT_CLIENT, DEFAULT_POLICY, POLICY_BACKENDS, unavailable, WEB_CLIENT, type LabClient } from '../lab/policy-backends.js';
import { unboundUid } from '../lab/unbound.js';
import { CLI, startCli, type CliProcess } from '../support/cli-process.js';
import { printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const FLOW = fileURLToPath(new URL('../lab/tcp-flow.mjs', import.meta.url));
const ADDRESS = {
  webOnly: '198.51.100.10',
  defaultOnly: '198.51.100.11',
  both: '198.51.100.12',
  later: '198.51.100.13',
  kept: '198.51.100.14',
  sighup: '198.51.100.15',
  denied: '203.0.113.10',
} as const;
const RECORDS = [
  { name: 'web-only', type: 'A' as const, value: ADDRESS.webOnly },
  { name: 'default-only', type: 'A' as const, value: ADDRESS.defaultOnly },
  { name: 'both', type: 'A' as const, value: ADDRESS.both },
  { name: 'later', type: 'A' as const, value: ADDRESS.later },
  { name: 'kept', type: 'A' as const, value: ADDRESS.kept },
  { name: 'sighup', type: 'A' as const, value: ADDRESS.sighup },
  { name: 'denied', type: 'A' as const, value: ADDRESS.denied },
];
/** The long-lived flow's echo server (kept.test), and web's UDP service (web-only.test). */
const FLOW_PORT = 7000;
const UDP_PORT = 7001;
const DEFAULT_ALLOW = ['default-only.test.', 'both.test.'];
const WEB_ALLOW = ['web-only.test.', 'both.test.', 'kept.test.'];


/** The policy file: the default policy on TCP 443, and the given policies (web on 80, 7000, udp/7001, for 192.0.2.11). */
function policyFile(policies: Record<string, { allow: string[]; clients: string[] }>): string {
  const named = Object.fromEntries(Object.entries(policies).map(([name, p]) => [name, { allow: p.allow, ports: [80, FLOW_PORT, `udp/${UDP_PORT}`], clients: p.clients }]));
  return `# policies.test.ts\n${stringify({ allow: DEFAULT_ALLOW, ports: [443], ...(Object.keys(named).length ? { policies: named } : {}) })}`;
}
const web = (allow: string[]) => ({ web: { allow, clients: [`${WEB_CLIENT.address}/32`] } });

describe.skipIf(!canUseNamespaces()).each(POLICY_BACKENDS)(`policies per client on one bridge, --backend $name${skipNote()}`, (backend) => {
  let dir: string;
  let socket: string;
  /** The policy file the daemon reads; rewritten by renaming another file over it, as editors do. */
  let file: string;
  let lab: FirewallLab;
  let daemon: CliProcess | undefined;
  const helpers: NsProcess[] = [];
  /** The internet's UDP service on web-only.test's address (prints each datagram), and web's long-lived flow to kept.test. */
  let udp: NsProcess;
  let flow: NsProcess;
  const host = () => lab.host;
  const allowed = { web: [...WEB_ALLOW] };

  const start = async () => {
    daemon = startCli(lab.host.name, ['--interface', BRIDGE, '--listen', socket, '--socket-uid', String(await unboundUid()), '--policy', file, '--log-level', 'debug', ...backend.args]);
    await daemon.waitFor((l) => l.msg === 'on-his-name is running', 20_000);
    await daemon.waitFor((l) => l.msg === 'producer connected', 20_000);
  };
  const stop = async () => {
    expect(await daemon?.stop()).toBe(0);
    daemon = undefined;
  };
  /** Write `text` next to the policy file and rename it over it. */
  const replace = async (text: string) => {
    const next = join(dir, 'policy', '.policy.yaml.new');
    await writeFile(next, text);
    await rename(next, file);
  };
  /** The first log line from now on that `match` accepts. */
  const mark = () => {
    const from = daemon!.lines.length;
    return (match: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000) =>
      daemon!.waitFor((line) => daemon!.lines.indexOf(line) >= from && match(line), timeoutMs);
  };
  const reloaded = (next: ReturnType<typeof mark>, why: string) => next((l) => l.msg === 'policies reloaded' && l.why === why);
  /** `name` asked from `client` opens `address` for `policy` (the client's own by default): the kernel holds it. */
  const opens = async (client: LabClient, name: string, address: string, policy = client.policy) => {
    expect(await lab.resolve(name, { from: client.index })).toEqual([address]);
    await pollUntil(() => backend.open(host(), policy), (open) => open.has(address), 10_000, `${address} (${name}) open for policy ${policy}`);
  };
  /** `name` asked from `client` is denied by its policy: the daemon says so (a denied answer opens nothing). */
  const denied = async (client: LabClient, name: string) => {
    const next = mark();
    await lab.resolve(name, { from: client.index });
    await next((l) => l.msg === 'deny' && l.name === `${name}.` && l.client === client.address && l.policy === client.policy);
  };
  /** A TCP connection from `client`, decided by its policy's drop counter. */
  const reach = (client: LabClient, address: string, port: number, policy = client.policy): Promise<Reach> =>
    probe(lab.containers[client.index]!, { protocol: 'tcp', address, port }, () => backend.drops(host(), policy));
  const closes = (policy: string, address: string) =>
    pollUntil(() => backend.open(host(), policy), (open) => !open.has(address), 10_000, `${address} closed for policy ${policy}`);

  beforeAll(async () => {
    const missing = await unavailable(backend);
    if (missing) throw new Error(missing);
    dir = await mkdtemp(join(tmpdir(), 'ohn-policies-'));
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'policy'));
    await mkdir(join(dir, 'elsewhere'));
    socket = join(dir, 'dnstap.sock');
    file = join(dir, 'policy', 'policy.yaml');
    await writeFile(file, policyFile(web(allowed.web)));
    lab = await createFirewallLab({ dnstapSocket: socket, records: RECORDS, internetAddresses: [ADDRESS.sighup], hostFirewall: backend.hostFirewall, startDns: true });
    helpers.push(await startReady(lab.internet, FLOW, ['serve', `${ADDRESS.kept}:${FLOW_PORT}`]));
    helpers.push((udp = await startReady(lab.internet, SCRIPTS.udpService, [`${ADDRESS.webOnly}:${UDP_PORT}`])));
    await start();
  }, 90_000);

  printOnFailure(async () => `${await backend.show(host())}\n\ndaemon log:\n${daemon?.output() ?? '(no daemon)'}`);

  afterAll(async () => {
    await daemon?.stop();
    for (const helper of helpers.splice(0).reverse()) await helper.stop();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("opens a name only web allows for web's client alone: the default client stays blocked to it, even once it asked", async () => {
    await opens(WEB_CLIENT, 'web-only.test', ADDRESS.webOnly);
    expect(await reach(WEB_CLIENT, ADDRESS.webOnly, 80)).toBe('reached');
    expect(await reach(DEFAULT_CLIENT, ADDRESS.webOnly, 80)).toBe('dropped');
    expect(await reach(DEFAULT_CLIENT, ADDRESS.webOnly, 443)).toBe('dropped');
    await denied(DEFAULT_CLIENT, 'web-only.test');
    expect(await reach(DEFAULT_CLIENT, ADDRESS.webOnly, 80)).toBe('dropped');
    expect(await backend.open(host(), DEFAULT_POLICY)).not.toContain(ADDRESS.webOnly);
  }, 60_000);

  it("and the other way round: a name only the default allows opens for the default client, never for web's", async () => {
    await opens(DEFAULT_CLIENT, 'default-only.test', ADDRESS.defaultOnly);
    expect(await reach(DEFAULT_CLIENT, ADDRESS.defaultOnly, 443)).toBe('reached');
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 443)).toBe('dropped');
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 80)).toBe('dropped');
    await denied(WEB_CLIENT, 'default-only.test');
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 443)).toBe('dropped');
    expect(await backend.open(host(), 'web')).not.toContain(ADDRESS.defaultOnly);
  }, 60_000);

  it('a name both policies allow: each client reaches it once it asked, on its own policy’s ports only', async () => {
    await opens(WEB_CLIENT, 'both.test', ADDRESS.both);
    expect(await reach(WEB_CLIENT, ADDRESS.both, 80)).toBe('reached');
    expect(await reach(WEB_CLIENT, ADDRESS.both, 443)).toBe('dropped');
    // Web's answer opened it for web: the default client has not asked yet.
    expect(await reach(DEFAULT_CLIENT, ADDRESS.both, 443)).toBe('dropped');
    await opens(DEFAULT_CLIENT, 'both.test', ADDRESS.both);
    expect(await reach(DEFAULT_CLIENT, ADDRESS.both, 443)).toBe('reached');
    expect(await reach(DEFAULT_CLIENT, ADDRESS.both, 80)).toBe('dropped');
    expect(await reach(WEB_CLIENT, ADDRESS.both, 443)).toBe('dropped');
    expect(await reach(WEB_CLIENT, ADDRESS.both, 80)).toBe('reached');
  }, 60_000);

  it('keeps each policy in kernel objects of its own (printed once: what the docs show)', async () => {
    expect(await backend.open(host(), DEFAULT_POLICY)).toEqual(new Set([ADDRESS.defaultOnly, ADDRESS.both]));
    expect(await backend.open(host(), 'web')).toEqual(new Set([ADDRESS.webOnly, ADDRESS.both]));
    expect(await backend.objects(host(), 'web')).not.toEqual([]);
    // And the log says which ports each policy's firewall opens.
    const installed = (policy: string | undefined) => daemon!.lines.find((l) => l.component === 'firewall' && l.policy === policy && l.family === undefined && /^(installed base|adopted existing) rules/.test(l.msg));
    expect(installed(undefined)).toMatchObject({ ports: ['tcp/443'] });
    expect(installed('web')).toMatchObject({ ports: ['tcp/80', `tcp/${FLOW_PORT}`, `udp/${UDP_PORT}`] });
    console.info(`policies in the kernel, --backend ${backend.name}:\n${await backend.show(host())}`);
  });

  it("a forged source: the default client sending as web's client cannot complete TCP (the answer goes to the owner), but its UDP arrives", async () => {
    const [forger, owner] = [lab.containers[DEFAULT_CLIENT.index]!, lab.containers[WEB_CLIENT.index]!];
    const counter = async (ns: typeof forger, chain: string, comment: string) => {
      const saved = await ns.exec('iptables-save', ['-c', '-t', 'filter']);
      // iptables-save quotes a comment only when it has to.
      return Number(new RegExp(`^\\[(\\d+):\\d+\\] -A ${chain} .*--comment "?${comment}"?( |$)`, 'm').exec(saved)?.[1] ?? 0);
    };
    // Counting rules (no verdict) in the containers' own namespaces: SYN-ACKs in, and the owner's RSTs out.
    const synAck = ['-p', 'tcp', '-s', ADDRESS.webOnly, '--sport', '80', '--tcp-flags', 'SYN,ACK', 'SYN,ACK', '-m', 'comment', '--comment', 'syn-ack'];
    for (const ns of [forger, owner]) await ns.exec('iptables', ['-A', 'INPUT', ...synAck]);
    await owner.exec('iptables', ['-A', 'OUTPUT', '-p', 'tcp', '-d', ADDRESS.webOnly, '--dport', '80', '--tcp-flags', 'RST', 'RST', '-m', 'comment', '--comment', 'rst']);
    await lab.internet.exec('iptables', ['-A', 'INPUT', '-s', WEB_CLIENT.address, '-p', 'tcp', '--dport', '80', '--syn', '-m', 'comment', '--comment', 'forged-syn']);
    const drops = async () => (await backend.drops(host(), DEFAULT_POLICY)) + (await backend.drops(host(), 'web'));
    const datagramsFromOwner = async () => udp.lines.filter((l) => l.from === WEB_CLIENT.address).length;

    expect(await backend.open(host(), 'web')).toContain(ADDRESS.webOnly);
    // Without forging, both are the default policy's to drop.
    expect(await probe(forger, { protocol: 'udp', address: ADDRESS.webOnly, port: UDP_PORT }, () => backend.drops(host(), DEFAULT_POLICY))).toBe('dropped');

    await forgeAddress(forger, WEB_CLIENT.address, 'lo');
    try {
      const tcp = startInNamespace(forger, [process.execPath, SCRIPTS.probe, 'tcp', ADDRESS.webOnly, '80', WEB_CLIENT.address]);
      try {
        // The forged SYN passes web's policy and reaches the server; its SYN-ACK goes to the owner, which resets it.
        await pollUntil(() => counter(owner, 'OUTPUT', 'rst'), (n) => n > 0, 10_000, 'the owner resets the connection it never opened');
        expect(await counter(lab.internet, 'INPUT', 'forged-syn')).toBeGreaterThan(0);
        expect(await counter(owner, 'INPUT', 'syn-ack')).toBeGreaterThan(0);
        // That SYN-ACK went to the owner: it can never reach the forger, so its connection cannot complete.
        expect(await counter(forger, 'INPUT', 'syn-ack')).toBe(0);
        expect(tcp.running).toBe(true);
      } finally {
        await tcp.stop();
      }

      const before = await datagramsFromOwner();
      const started = Date.now();
      const reached = await probe(forger, { protocol: 'udp', address: ADDRESS.webOnly, port: UDP_PORT, source: WEB_CLIENT.address }, { dropped: drops, arrived: datagramsFromOwner });
      console.info(
        `forged source, --backend ${backend.name}: TCP as ${WEB_CLIENT.address} from the default client: ${await counter(lab.internet, 'INPUT', 'forged-syn')} SYN(s) reached the server, ` +
          `${await counter(owner, 'INPUT', 'syn-ack')} SYN-ACK(s) went to the owner, which sent ${await counter(owner, 'OUTPUT', 'rst')} RST(s); ${await counter(forger, 'INPUT', 'syn-ack')} reached the forger. ` +
          `UDP as ${WEB_CLIENT.address} to web's ${ADDRESS.webOnly}:${UDP_PORT}: ${reached} in ${Date.now() - started} ms (${(await datagramsFromOwner()) - before} datagram(s) arrived)`,
      );
      expect(reached).toBe('reached');
    } finally {
      await forger.ip('addr', 'del', `${WEB_CLIENT.address}/32`, 'dev', 'lo');
    }
  }, 60_000);

  it('reloads a file renamed over it: a pattern added opens from the next answer', async () => {
    await denied(WEB_CLIENT, 'later.test');
    expect(await reach(WEB_CLIENT, ADDRESS.later, 80)).toBe('dropped');
    const next = mark();
    allowed.web.push('later.test.');
    await replace(policyFile(web(allowed.web)));
    await reloaded(next, 'the file changed');
    await opens(WEB_CLIENT, 'later.test', ADDRESS.later);
    expect(await reach(WEB_CLIENT, ADDRESS.later, 80)).toBe('reached');
  }, 60_000);

  it("a pattern removed closes its addresses without a restart; another name's established flow goes on", async () => {
    await opens(WEB_CLIENT, 'kept.test', ADDRESS.kept);
    flow = startInNamespace(lab.containers[WEB_CLIENT.index]!, [process.execPath, FLOW, 'hold', ADDRESS.kept, String(FLOW_PORT)]);
    helpers.push(flow);
    await flow.waitForLine((l) => Number(l.echoed) > 0, 10_000, 'an echo on the flow');

    const next = mark();
    allowed.web = allowed.web.filter((p) => p !== 'web-only.test.');
    await replace(policyFile(web(allowed.web)));
    await reloaded(next, 'the file changed');
    expect(await next((l) => l.msg === 'the policy no longer allows these names: closing their addresses')).toMatchObject({ policy: 'web', addresses: [`${ADDRESS.webOnly} web-only.test.`] });
    await closes('web', ADDRESS.webOnly);
    const echoed = Math.max(...flow.lines.map((l) => Number(l.echoed ?? 0)));
    expect(await reach(WEB_CLIENT, ADDRESS.webOnly, 80)).toBe('dropped');
    await flow.waitForLine((l) => Number(l.echoed) > echoed, 10_000, 'an echo on the same flow after the reload');
    expect(await backend.open(host(), 'web')).toEqual(new Set([ADDRESS.both, ADDRESS.later, ADDRESS.kept]));
    expect(await backend.open(host(), DEFAULT_POLICY)).toEqual(new Set([ADDRESS.defaultOnly, ADDRESS.both]));
    expect(daemon!.lines.filter((l) => l.msg === 'on-his-name is running')).toHaveLength(1);
  }, 60_000);

  it('SIGHUP reloads the same way, where no change of the file is seen', async () => {
    // The file becomes a link to one in another directory: editing that one in place moves
    // nothing in the directory the daemon watches, so only SIGHUP can reload it.
    const real = join(dir, 'elsewhere', 'policy.yaml');
    await writeFile(real, policyFile(web(allowed.web)));
    let next = mark();
    await symlink(real, join(dir, 'policy', '.policy.yaml.link'));
    await rename(join(dir, 'policy', '.policy.yaml.link'), file);
    await reloaded(next, 'the file changed');

    next = mark();
    allowed.web = [...allowed.web.filter((p) => p !== 'later.test.'), 'sighup.test.'];
    await writeFile(real, policyFile(web(allowed.web)));
    expect(daemon!.signal('SIGHUP')).toBe(true);
    await reloaded(next, 'SIGHUP');
    await closes('web', ADDRESS.later);
    expect(await reach(WEB_CLIENT, ADDRESS.later, 80)).toBe('dropped');
    await opens(WEB_CLIENT, 'sighup.test', ADDRESS.sighup);
    expect(await reach(WEB_CLIENT, ADDRESS.sighup, 80)).toBe('reached');
    const echoed = Math.max(...flow.lines.map((l) => Number(l.echoed ?? 0)));
    await flow.waitForLine((l) => Number(l.echoed) > echoed, 10_000, 'an echo on the same flow after SIGHUP');
    expect(daemon!.lines.filter((l) => l.msg === 'policies reloaded').map((l) => l.why)).toEqual(['the file changed', 'the file changed', 'the file changed', 'SIGHUP']);
  }, 60_000);

  // Each would give web denied.test and take kept.test away, were it applied.
  const BAD_HEAD = `allow: [${DEFAULT_ALLOW.map((p) => `"${p}"`).join(', ')}]\nports: [443]\npolicies:\n  web:\n`;
  describe.each([
    { mistake: 'a mistyped key', text: `${BAD_HEAD}    alow: ["denied.test.", "both.test."]\n    clients: ["${WEB_CLIENT.address}/32"]\n`, line: 5, reason: 'unknown key "alow" in policy web: expected allow, ports, clients, audit' },
    // The bracket left open is found where the next key begins.
    {
      mistake: 'invalid YAML',
      text: `${BAD_HEAD}    allow: ["denied.test.", "both.test."\n    clients: ["${WEB_CLIENT.address}/32"]\n`,
      line: 6,
      reason: 'not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    },
  ])('a bad file ($mistake)', ({ text, line, reason }) => {
    it('is refused whole: one error line naming the file and line, the old policies keep working, nothing opens or closes', async () => {
      const kernel = async () => ({
        default: await backend.open(host(), DEFAULT_POLICY),
        web: await backend.open(host(), 'web'),
        objects: (await backend.objects(host(), 'web')).map((line) => line.replace(/counter packets \d+ bytes \d+|timeout \S+|expires \S+/g, '')),
      });
      const before = await kernel();
      const next = mark();
      const from = daemon!.lines.length;
      await replace(text);
      const refusal = await next((l) => l.msg === 'policy reload refused: the running policies stay');
      expect(refusal).toMatchObject({ level: 50, why: 'the file changed', err: `${file}:${line}: ${reason}` });
      expect(await kernel()).toEqual(before);
      // web's old patterns still judge: denied.test stays denied, kept.test stays open.
      await denied(WEB_CLIENT, 'denied.test');
      expect(await reach(WEB_CLIENT, ADDRESS.denied, 80)).toBe('dropped');
      expect(await reach(WEB_CLIENT, ADDRESS.kept, 80)).toBe('reached');
      expect(daemon!.lines.slice(from).filter((l) => Number(l.level) >= 50)).toEqual([refusal]);
      // `check` gives the same line, offline.
      const check = await execa(process.execPath, [CLI, 'check', '--policy', file], { reject: false });
      expect(check.exitCode).toBe(2);
      expect(check.stderr.trim()).toEqual(`on-his-name: ${String(refusal.err)}`);

      const back = mark();
      await replace(policyFile(web(allowed.web)));
      await reloaded(back, 'the file changed');
    }, 60_000);
  });

  it('a reload that takes a whole policy away removes its chain and sets at once, and its client falls to the default policy', async () => {
    expect(await backend.objects(host(), 'web')).not.toEqual([]);
    let next = mark();
    await replace(policyFile({}));
    await reloaded(next, 'the file changed');
    expect(await backend.objects(host(), 'web')).toEqual([]);
    await opens(WEB_CLIENT, 'default-only.test', ADDRESS.defaultOnly, DEFAULT_POLICY);
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 443, DEFAULT_POLICY)).toBe('reached');
    expect(await reach(WEB_CLIENT, ADDRESS.kept, FLOW_PORT, DEFAULT_POLICY)).toBe('dropped');

    // And back: a policy new to the running daemon, its chain and set made before a route names them.
    next = mark();
    await replace(policyFile(web(allowed.web)));
    await reloaded(next, 'the file changed');
    await opens(WEB_CLIENT, 'kept.test', ADDRESS.kept);
    expect(await reach(WEB_CLIENT, ADDRESS.kept, FLOW_PORT)).toBe('reached');
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 443)).toBe('dropped');
  }, 60_000);

  it('a restart with a policy gone from the file removes its chain and sets, and its client falls to the default policy', async () => {
    expect(await backend.objects(host(), 'web')).toEqual(expect.arrayContaining([expect.stringContaining(WEB_CLIENT.address)]));
    await stop();
    await replace(policyFile({}));
    await start();
    expect(await backend.objects(host(), 'web')).toEqual([]);
    await opens(WEB_CLIENT, 'default-only.test', ADDRESS.defaultOnly, DEFAULT_POLICY);
    expect(await reach(WEB_CLIENT, ADDRESS.defaultOnly, 443, DEFAULT_POLICY)).toBe('reached');
    expect(await reach(WEB_CLIENT, ADDRESS.kept, FLOW_PORT, DEFAULT_POLICY)).toBe('dropped');
  }, 60_000);

  it('reset removes every policy chain and set', async () => {
    await stop();
    await replace(policyFile({ ...web(allowed.web), api: { allow: ['denied.test.'], clients: ['192.0.2.20/32'] } }));
    await start();
    await opens(WEB_CLIENT, 'kept.test', ADDRESS.kept);
    expect(await backend.objects(host(), 'web')).not.toEqual([]);
    expect(await backend.objects(host(), 'api')).not.toEqual([]);
    await stop();
    const reset = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, 'reset'], { reject: false });
    expect(reset.exitCode, String(reset.stderr)).toBe(0);
    expect(await backend.everything(host())).toEqual([]);
    if (backend.hostFirewall === 'docker-user') expect(await lab.listRules()).toContain(lab.foreignRule);
  }, 60_000);
});
