/**
 * The rules on-his-name owns in DOCKER-USER, as iptables rule specifications, and the
 * reverse: recognising them in an `iptables -S` listing. Pure; no I/O.
 *
 * For a bridge BR, our block reads, top to bottom:
 *   -i BR -m conntrack --ctstate RELATED,ESTABLISHED  -j RETURN   replies and established flows
 *   -i BR -o BR                                       -j RETURN   containers of the same network
 *   -i BR -d IP/32 -p tcp --dport PORT                -j ACCEPT   one per allowed address and port (/128 in ip6tables)
 *   -i BR                                             -j DROP     everything else from BR
 * Every rule carries a comment starting with TAG, which is how we find our own again. An
 * accept rule's comment also holds when it expires and the name that opened it,
 * `on-his-name exp=1764000000 example.com.`, so that the kernel alone says what is open
 * until when, and a restart reads it back. Rules written before expiry existed read
 * `on-his-name example.com.` and are still ours.
 * With `--backend ipset` the accept rules are one rule that matches an ipset instead:
 *   -i BR -p tcp -m multiport --dports PORTS -m set --match-set SET dst -j ACCEPT
 */

export const CHAIN = 'DOCKER-USER';
export const TAG = 'on-his-name';

export type Role = 'established' | 'same-network' | 'accept' | 'set-accept' | 'drop';

export interface OwnedRule {
  role: Role;
  bridge: string;
  /** For accept rules. */
  address?: string;
  port?: number;
  /** For set-accept rules: the ipset matched and the ports as listed (e.g. "80,443"). */
  set?: string;
  ports?: string;
  /** The DNS name recorded in an accept rule's comment, when there is one. */
  name?: string;
  /** Wall-clock unix seconds from an accept rule's comment; absent in the older format. */
  expiresAt?: number;
  /** The rule spec as listed by `iptables -S`, without the leading `-A CHAIN`. */
  spec: string;
}

/** Rule specs (without `-A CHAIN`) in the order they must appear. */
export function establishedRule(bridge: string): string {
  return `-i ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "${TAG} established" -j RETURN`;
}

export function sameNetworkRule(bridge: string): string {
  return `-i ${bridge} -o ${bridge} -m comment --comment "${TAG} same-network" -j RETURN`;
}

export function acceptRule(bridge: string, address: string, port: number, name?: string, expiresAt?: number): string {
  return `-d ${address}/${address.includes(':') ? 128 : 32} -i ${bridge} -p tcp -m tcp --dport ${port} -m comment --comment "${acceptComment(name, expiresAt)}" -j ACCEPT`;
}

/** The one accept rule of the ipset backend: new TCP connections to PORTS of an address in SET. */
export function setAcceptRule(bridge: string, ports: readonly number[], set: string): string {
  return `-i ${bridge} -p tcp -m multiport --dports ${ports.join(',')} -m set --match-set ${set} dst -m comment --comment "${TAG} allowed-set" -j ACCEPT`;
}

export function dropRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} default-drop" -j DROP`;
}

/** The kernel keeps at most 255 bytes of a comment (256 with its NUL). */
export const MAX_COMMENT_BYTES = 255;
const SAFE_NAME = /^[a-z0-9._-]+$/;
const EXPIRY = /^exp=(\d{1,12})(?: (.*))?$/;

/** A name we cannot quote safely, or that would not fit, is left out; the expiry never is. */
export function acceptComment(name: string | undefined, expiresAt?: number): string {
  const head = expiresAt === undefined ? TAG : `${TAG} exp=${Math.floor(expiresAt)}`;
  if (name && SAFE_NAME.test(name) && head.length + 1 + name.length <= MAX_COMMENT_BYTES) return `${head} ${name}`;
  return head;
}

/** The name and expiry in an accept rule's comment (the text after TAG and a space). */
export function parseAcceptComment(rest: string): { name?: string; expiresAt?: number } {
  const match = EXPIRY.exec(rest);
  const name = (match ? match[2] : rest) || undefined;
  return { ...(name ? { name } : {}), ...(match ? { expiresAt: Number(match[1]) } : {}) };
}

/** Split an `iptables -S` line into words, honouring the double quotes iptables prints. */
export function splitRule(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) {
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  }
  return words;
}

/**
 * Recognise one of our rules in an `iptables -S CHAIN` line; undefined for anything
 * that is not ours (or not a rule), which we then never touch.
 */
export function parseOwnedRule(line: string): OwnedRule | undefined {
  const words = splitRule(line);
  if (words[0] !== '-A' || words[1] !== CHAIN) return undefined;
  const option = (name: string): string | undefined => {
    const at = words.indexOf(name, 2);
    return at >= 0 ? words[at + 1] : undefined;
  };
  const comment = option('--comment');
  if (comment === undefined || (comment !== TAG && !comment.startsWith(`${TAG} `))) return undefined;
  const bridge = option('-i');
  if (bridge === undefined) return undefined;
  const spec = line.trim().replace(/^-A\s+\S+\s+/, '');
  const target = option('-j');
  if (target === 'DROP') return { role: 'drop', bridge, spec };
  if (target === 'RETURN' && option('--ctstate') !== undefined) return { role: 'established', bridge, spec };
  if (target === 'RETURN' && option('-o') === bridge) return { role: 'same-network', bridge, spec };
  const set = option('--match-set');
  if (target === 'ACCEPT' && set !== undefined) return { role: 'set-accept', bridge, set, ports: option('--dports') ?? '', spec };
  if (target === 'ACCEPT') {
    const address = option('-d')?.replace(/\/(32|128)$/, '');
    const port = Number(option('--dport'));
    const details = parseAcceptComment(comment.slice(TAG.length + 1));
    if (address && Number.isInteger(port)) return { role: 'accept', bridge, address, port, spec, ...details };
  }
  return undefined;
}
