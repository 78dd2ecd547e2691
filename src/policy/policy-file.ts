/**
 * The policy file, read. Pure: YAML text in, the file's policies as plain data out, or a
 * PolicyFileError naming the file, the line and what is wrong. Read whole before anything
 * changes (as nginx -t and CoreDNS's reload do): a file with one mistake is refused whole.
 *
 *   allow: ["example.com."]            # joins the command-line patterns: the default policy
 *   ports: [80, 443]                   # ports for every policy that names none; "tcp/443", "udp/443" accepted
 *   policies:
 *     ci:
 *       allow: ["github.com.", "*.github.com."]
 *       ports: [443, 22]
 *       clients: ["172.18.0.16/28"]    # optional: source addresses or ranges
 *       audit: true                    # optional: record what it would block, block nothing
 *   audit: false                       # the default policy's audit mode (--audit: every policy)
 *
 * Patterns, ports and ranges are checked here too, each with its line, by the same parsers
 * the command line uses, so an error reads the same wherever it was made.
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { parsePortSpec, setPortsRefusal } from '../config/ports.js';
import type { PortSpec } from '../firewall/rules.js';
import { canonicalRange } from '../util/address.js';
import { overlaps } from '../util/cidr.js';
import { ConfigError } from '../util/errors.js';
import { compilePattern, type PatternOptions } from './pattern.js';
import { parseCidr } from './special-addresses.js';

export interface FilePolicy {
  name: string;
  allow: string[];
  /** Absent: the file's top-level ports, or else --ports. */
  ports?: PortSpec[];
  clients: string[];
  audit: boolean;
}

export interface PolicyFile {
  allow: string[];
  ports?: PortSpec[];
  /** The default policy's audit mode. */
  audit: boolean;
  policies: FilePolicy[];
}

/** A mistake in the policy file: where it is and what is wrong, as one line. */
export class PolicyFileError extends ConfigError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${reason}`);
  }
}

/**
 * A name the kernel objects of a policy can carry (iptables chains hold 28 characters,
 * ipset names 31: `OHN-P-` and `ohn-p-…-v4` leave 22). "default" is the policy of every
 * client without one of its own.
 */
export const POLICY_NAME = /^[a-z][a-z0-9_-]{0,21}$/;
/** Names the daemon gives policies itself: the default, the refusing one, a container's own. */
const RESERVED = /^(default|refused|c-.*)$/;
const KEYS = { top: ['allow', 'ports', 'audit', 'policies'], policy: ['allow', 'ports', 'clients', 'audit'] };

/** `maxSetPorts`: the most ports of one protocol a policy may have (the ipset backend's rule). */
export function parsePolicyFile(text: string, file: string, options: PatternOptions & { maxSetPorts?: number } = {}): PolicyFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : undefined);
  const fail = (node: Node | null | undefined, reason: string): never => {
    throw new PolicyFileError(file, at(node), reason);
  };
  const [first] = doc.errors;
  // Without prettyErrors the error carries only its offset: the line is ours to count.
  if (first) throw new PolicyFileError(file, lines.linePos(first.pos[0]).line, `not valid YAML: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null) || (isMap(root) && root.items.length === 0)) return { allow: [], audit: false, policies: [] };
  if (!isMap(root)) return fail(root, 'the file must be a mapping with allow, ports and policies (see docs/policies.md)');
  checkKeys(root, KEYS.top, 'at the top', fail);

  const strings = (node: unknown, what: string): Array<{ value: string; node: Node }> => {
    if (node === undefined || node === null) return [];
    if (!isSeq(node)) return fail(node as Node, `${what} must be a list, e.g. ["example.com."]`);
    return node.items.map((item) => {
      const value = (item as { value?: unknown }).value;
      if (typeof value !== 'string' && typeof value !== 'number') fail(item as Node, `${what}: each item must be a string`);
      return { value: String(value), node: item as Node };
    });
  };
  const patterns = (node: unknown, what: string) =>
    strings(node, what).map(({ value, node: item }) => {
      try {
        compilePattern(value, options);
      } catch (err) {
        fail(item, (err as Error).message);
      }
      return value;
    });
  const ports = (node: unknown, what: string): PortSpec[] | undefined => {
    if (node === undefined || node === null) return undefined;
    const list = strings(node, what);
    if (list.length === 0) fail(node as Node, `${what} is empty: name at least one port, or leave it out`);
    const specs = list.map(({ value, node: item }) => {
      try {
        return parsePortSpec(value, what);
      } catch (err) {
        return fail(item, (err as Error).message);
      }
    });
    const tooMany = options.maxSetPorts === undefined ? undefined : setPortsRefusal(specs, options.maxSetPorts);
    if (tooMany) fail(node as Node, `${what}: ${tooMany}: give fewer, or use another backend`);
    return specs;
  };

  const flag = (node: unknown, what: string): boolean => {
    if (node === undefined || node === null) return false;
    const value = (node as { value?: unknown }).value;
    if (typeof value !== 'boolean') fail(node as Node, `${what} must be true or false`);
    return value as boolean;
  };

  const policies: FilePolicy[] = [];
  const ranges: Array<{ policy: string; cidr: string }> = [];
  const section = root.get('policies', true);
  if (section !== undefined && section !== null && !isMap(section)) fail(section as Node, 'policies must be a mapping of names to policies');
  for (const pair of isMap(section) ? section.items : []) {
    const key = pair.key as Node | null;
    // A plain word: not what YAML makes of an empty key, an alias, a mapping or `true` ("null", "undefined", "true").
    const name = isScalar(key) ? String(key.value) : String(key ?? '');
    if (!isScalar(key) || typeof key.value !== 'string' || !POLICY_NAME.test(name) || RESERVED.test(name)) {
      fail(key, `"${name}" cannot name a policy: lower-case letters, digits, "-" and "_", starting with a letter, at most 22, and not "default", "refused" or "c-…" (a container's own)`);
    }
    const body = pair.value;
    if (!isMap(body)) return fail((body as Node | null) ?? key, `policy ${name} must be a mapping with allow, and optionally ports, clients and audit`);
    checkKeys(body, KEYS.policy, `in policy ${name}`, fail);
    const allow = patterns(body.get('allow', true), `policy ${name}: allow`);
    const clients = strings(body.get('clients', true), `policy ${name}: clients`).map(({ value, node }) => {
      try {
        parseCidr(value, `policy ${name}: clients`);
      } catch (err) {
        fail(node, (err as Error).message);
      }
      // A client belongs to one policy: two that claim the same address would leave it to chance.
      const other = ranges.find((r) => r.policy !== name && overlaps(r.cidr, value));
      if (other) fail(node, `policy ${name}: clients ${value} overlaps ${other.cidr} of policy ${other.policy}: a client belongs to one policy`);
      ranges.push({ policy: name, cidr: value });
      // As the kernel tools print it back (172.18.0.20/28 lists as 172.18.0.16/28): a route
      // written otherwise would read as changed, and be rewritten, at every reconcile.
      return canonicalRange(value) ?? value;
    });
    const policyPorts = ports(body.get('ports', true), `policy ${name}: ports`);
    policies.push({ name, allow, clients, audit: flag(body.get('audit', true), `policy ${name}: audit`), ...(policyPorts ? { ports: policyPorts } : {}) });
  }
  const topPorts = ports(root.get('ports', true), 'ports');
  return { allow: patterns(root.get('allow', true), 'allow'), ...(topPorts ? { ports: topPorts } : {}), audit: flag(root.get('audit', true), 'audit'), policies };
}

function checkKeys(map: { items: Array<{ key: unknown }> }, allowed: readonly string[], where: string, fail: (node: Node, reason: string) => never): void {
  for (const { key } of map.items) {
    const name = String((key as { value?: unknown }).value);
    if (!allowed.includes(name)) fail(key as Node, `unknown key "${name}" ${where}: expected ${allowed.join(', ')}`);
  }
}
