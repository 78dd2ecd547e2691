/**
 * The rules on-his-name owns in DOCKER-USER, as iptables rule specifications, and the
 * reverse: recognising them in an `iptables -S` listing. Pure; no I/O.
 *
 * For a bridge BR, our block reads, top to bottom:
 *   -i BR -m conntrack --ctstate RELATED,ESTABLISHED  -j RETURN   replies and established flows
 *   -i BR -o BR                                       -j RETURN   containers of the same network
 *   -i BR -d IP/32 -p tcp --dport PORT                -j ACCEPT   one per allowed address and port (/128 in ip6tables)
 *   -i BR                                             -j DROP     everything else from BR
 * Every rule carries a comment starting with TAG, which is how we find our own again.
 */

export const CHAIN = 'DOCKER-USER';
export const TAG = 'on-his-name';

export type Role = 'established' | 'same-network' | 'accept' | 'drop';

export interface OwnedRule {
  role: Role;
  bridge: string;
  /** For accept rules. */
  address?: string;
  port?: number;
  /** The DNS name recorded in an accept rule's comment, when there is one. */
  name?: string;
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

export function acceptRule(bridge: string, address: string, port: number, name?: string): string {
  return `-d ${address}/${address.includes(':') ? 128 : 32} -i ${bridge} -p tcp -m tcp --dport ${port} -m comment --comment "${acceptComment(name)}" -j ACCEPT`;
}

export function dropRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} default-drop" -j DROP`;
}

/** iptables comments are at most 256 bytes; a name we cannot quote safely is left out. */
function acceptComment(name: string | undefined): string {
  if (name && /^[a-z0-9._-]{1,240}$/.test(name)) return `${TAG} ${name}`;
  return TAG;
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
  if (target === 'ACCEPT') {
    const address = option('-d')?.replace(/\/(32|128)$/, '');
    const port = Number(option('--dport'));
    const name = comment.slice(TAG.length + 1) || undefined;
    if (address && Number.isInteger(port)) return { role: 'accept', bridge, address, port, spec, ...(name ? { name } : {}) };
  }
  return undefined;
}
