/**
 * For the blocked-view and audit suites: the admin API read from inside the lab's host
 * namespace, and what each backend holds for them in the kernel, read the way its own
 * tools list it:
 *
 *   the verdict   the last rule of a policy: DOCKER-USER's default-drop (audit: the
 *                 "audit" RETURN) or OHN-P-NAME's policy-drop (audit: the "policy-audit"
 *                 MARK) for iptables and ipset; policy-NAME's counted drop (audit: counted
 *                 accept) for nftables; with its packet counter
 *   the record    ipset ohn-blocked-v4 (iptables, ipset) or nft set blocked4: how many
 *                 elements it holds now, and its bound
 *   a policy      its rules with their counters and, for the set backends, its set's
 *                 elements with theirs: what a switch of audit mode must leave alone
 *
 * IPv4 only, as the policy suites' lab.
 */
import { execa } from 'execa';
import type { BlockedAttemptView, BlockedListView } from '../../src/admin/api.js';
import type { FirewallLab } from './firewall-lab.js';
import type { Namespace } from './netns.js';
import { DEFAULT_POLICY, type PolicyBackend } from './policy-backends.js';
import { synRetransmits } from './syn-retransmits.js';
import { CLI } from '../support/cli-process.js';

export const ADMIN_PORT = 9464;

export interface Admin {
  /** curl inside the lab's host namespace: status code, body, and how long it took. */
  get(path: string): Promise<{ status: number; body: string; ms: number }>;
  json<T>(path: string): Promise<T>;
  blocked(): Promise<BlockedListView>;
  /** One series of /metrics (`name{labels}`), or undefined when it is not there. */
  metric(series: string): Promise<number | undefined>;
  /** `on-his-name COMMAND --admin-listen PORT` in the host namespace (status, suggest). */
  cli(command: string): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
}

export function adminOf(lab: FirewallLab, port = ADMIN_PORT): Admin {
  const get = async (path: string) => {
    const started = Date.now();
    const out = await lab.hostExec('curl', ['-s', '--max-time', '10', '-w', '\\n%{http_code}', `http://127.0.0.1:${port}${path}`]);
    const at = out.lastIndexOf('\n');
    return { status: Number(out.slice(at + 1)), body: out.slice(0, at), ms: Date.now() - started };
  };
  const json = async <T>(path: string) => JSON.parse((await get(path)).body) as T;
  return {
    get,
    json,
    blocked: () => json<BlockedListView>('/api/blocked'),
    async metric(series) {
      const line = (await get('/metrics')).body.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    },
    async cli(command) {
      const result = await execa('ip', ['netns', 'exec', lab.host.name, process.execPath, CLI, command, '--admin-listen', String(port)], { reject: false });
      return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
    },
  };
}

/** The entries of `view` for one (client, destination, protocol, port). */
export function attemptsOf(view: BlockedListView, client: string, address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp'): BlockedAttemptView[] {
  return view.blocked.filter((b) => b.client === client && b.address === address && b.port === port && b.protocol === protocol);
}

/** The last rule of a policy, as the kernel lists it, and what it counted. */
export interface Verdict {
  /** drop, or audit mode's let-through (RETURN, MARK, accept). */
  kind: 'drop' | 'audit';
  /** The rule as listed, counters left out. */
  text: string;
  packets: number;
}

export interface RecordSet {
  /** Elements in the kernel's record now (IPv4). */
  elements: number;
  /** The most it holds (ipset maxelem, nft size). */
  bound: number;
}

export interface BlockedKernel {
  verdict(host: Namespace, policy: string): Promise<Verdict>;
  record(host: Namespace): Promise<RecordSet | undefined>;
  /** `policy`'s rules with counters (and for set backends its set's elements with theirs), one line each, the verdict last. */
  policyRules(host: Namespace, policy: string): Promise<string[]>;
}

const quiet = async (host: Namespace, command: string, args: readonly string[]) => {
  const result = await execa('ip', ['netns', 'exec', host.name, command, ...args], { reject: false });
  return result.exitCode === 0 ? String(result.stdout) : '';
};
const lines = (text: string) => text.split('\n').filter(Boolean);

const iptablesChain = (policy: string) => (policy === DEFAULT_POLICY ? 'DOCKER-USER' : `OHN-P-${policy}`);

/** `iptables-save -c` lines of `chain` (`[packets:bytes] -A CHAIN …`) that carry our comment. */
async function savedRules(host: Namespace, chain: string): Promise<string[]> {
  return lines(await quiet(host, 'iptables-save', ['-c', '-t', 'filter'])).filter((line) => line.includes(`-A ${chain} `) && /--comment "?on-his-name/.test(line));
}

const IPTABLES_VERDICTS = /--comment "?on-his-name (default-drop|audit|policy-drop|policy-audit)"?( |$)/;

const iptablesKernel: BlockedKernel = {
  async verdict(host, policy) {
    const rule = (await savedRules(host, iptablesChain(policy))).filter((line) => IPTABLES_VERDICTS.test(line)).at(-1);
    if (!rule) throw new Error(`no verdict rule for policy ${policy} in ${iptablesChain(policy)}`);
    const match = /^\[(\d+):\d+\] (.*)$/.exec(rule)!;
    const role = IPTABLES_VERDICTS.exec(rule)![1]!;
    return { kind: role.endsWith('drop') ? 'drop' : 'audit', text: match[2]!, packets: Number(match[1]) };
  },
  async record(host) {
    const listed = await quiet(host, 'ipset', ['list', '-t', 'ohn-blocked-v4']);
    if (!listed) return undefined;
    return { elements: Number(/Number of entries: (\d+)/.exec(listed)?.[1]), bound: Number(/maxelem (\d+)/.exec(listed)?.[1]) };
  },
  policyRules: (host, policy) => savedRules(host, iptablesChain(policy)),
};

const ipsetKernel: BlockedKernel = {
  ...iptablesKernel,
  async policyRules(host, policy) {
    const set = policy === DEFAULT_POLICY ? 'on-his-name-v4' : `ohn-p-${policy}-v4`;
    const elements = lines(await quiet(host, 'ipset', ['list', '-o', 'save', set])).filter((line) => line.startsWith('add '));
    // An element's timeout counts down: what stays is the address and its counters.
    return [...elements.map((line) => line.replace(/ timeout \d+/, '')), ...(await iptablesKernel.policyRules(host, policy))];
  },
};

type NftObject = Record<string, Record<string, unknown>>;
const nftJson = async (host: Namespace, args: readonly string[]): Promise<NftObject[]> => {
  const text = await quiet(host, 'nft', ['-j', 'list', ...args]);
  return text ? (JSON.parse(text) as { nftables: NftObject[] }).nftables : [];
};
type Expr = Record<string, { packets?: number } | unknown>;
/** An nft rule's expressions as text, its counter's numbers left out. */
const ruleText = (rule: Record<string, unknown>) => JSON.stringify((rule.expr as Expr[]).map((e) => ('counter' in e ? { counter: {} } : e)));

const nftKernel: BlockedKernel = {
  async verdict(host, policy) {
    const rules = (await nftJson(host, ['chain', 'inet', 'on-his-name', `policy-${policy}`])).flatMap((o) => (o.rule ? [o.rule] : []));
    const last = rules.at(-1);
    if (!last) throw new Error(`no chain policy-${policy} in table inet on-his-name`);
    const expr = last.expr as Expr[];
    const counter = expr.find((e) => 'counter' in e) as { counter: { packets: number } } | undefined;
    return { kind: expr.some((e) => 'drop' in e) ? 'drop' : 'audit', text: ruleText(last), packets: counter?.counter.packets ?? 0 };
  },
  async record(host) {
    const [object] = (await nftJson(host, ['set', 'inet', 'on-his-name', 'blocked4'])).filter((o) => o.set);
    if (!object) return undefined;
    return { elements: ((object.set!.elem as unknown[] | undefined) ?? []).length, bound: Number(object.set!.size) };
  },
  async policyRules(host, policy) {
    const set = policy === DEFAULT_POLICY ? 'allow4' : `p-${policy}-4`;
    const elements = (await nftJson(host, ['set', 'inet', 'on-his-name', set]))
      .flatMap((o) => ((o.set?.elem as unknown[] | undefined) ?? []))
      // { elem: { val, timeout, expires, counter, comment } }: the expiry counts down, the rest stays.
      .map((e) => JSON.stringify({ ...(e as { elem: Record<string, unknown> }).elem, expires: undefined }));
    const rules = (await nftJson(host, ['chain', 'inet', 'on-his-name', `policy-${policy}`])).flatMap((o) => (o.rule ? [o.rule] : []));
    return [...elements, ...rules.map((r) => `${String(r.comment)} ${JSON.stringify(r.expr)}`)];
  },
};

export function blockedKernel(backend: PolicyBackend): BlockedKernel {
  return backend.name === 'nftables' ? nftKernel : backend.name === 'ipset' ? ipsetKernel : iptablesKernel;
}

/** SYNs a namespace's kernel retransmitted so far (TcpExt TCPSynRetrans of /proc/net/netstat). */
export async function synRetransmitsIn(ns: Namespace): Promise<number> {
  return synRetransmits(await ns.exec('cat', ['/proc/net/netstat']));
}
