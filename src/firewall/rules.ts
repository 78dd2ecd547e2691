/**
 * The rules on-his-name owns, as iptables rule specifications, and the reverse:
 * recognising them in an `iptables -S` listing. Pure; no I/O.
 *
 * For a bridge BR, our block in DOCKER-USER reads, top to bottom:
 *   -i BR                                            -j ON-HIS-NAME-SOURCES   forged source addresses are dropped there
 *   -i BR -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN   replies and established flows
 *   -i BR -o BR                                      -j RETURN   containers of the same network
 *   -i BR                                            -j ON-HIS-NAME-CLIENTS   a client with a policy of its own goes (-g) to its chain
 *   -i BR -m mark --mark 0x10000000/0x10000000       -j RETURN   a policy chain in audit mode let it through
 *   -i BR -d IP/32 -p tcp --dport PORT               -j ACCEPT   one per allowed address and port (/128 in ip6tables), oldest first
 *   -i BR                                            -j ON-HIS-NAME-RECORD    what is about to be blocked is recorded
 *   -i BR                                            -j DROP     everything else from BR (in audit mode: RETURN, to Docker's rules)
 * and chains of our own, which we rewrite whole whenever they differ from what we want:
 *   ON-HIS-NAME-SOURCES  -s SUBNET -i BR -j RETURN (one per subnet of the network), then -i BR -j DROP
 *   ON-HIS-NAME-RECORD   adds (client, protocol:port, destination) to the ipset ohn-blocked-v4
 *                        (-v6), with a timeout and counters, for the blocked view; empty without ipset
 *   ON-HIS-NAME-CLIENTS  -s CLIENT -i BR -g OHN-P-NAME, one per client with a policy of its own
 *   OHN-P-NAME           a policy's accept rules, then the record jump and its DROP; in audit
 *                        mode the last rule marks the packet instead, and the goto's return
 *                        lands on the marked RETURN above: on to Docker's own rules, never to
 *                        the default policy's accepts or a second record
 *   ON-HIS-NAME-INPUT    what a container may send to the host itself, jumped to from INPUT
 *                        (-i BR -j ON-HIS-NAME-INPUT): neighbour discovery (IPv6), the source
 *                        check, established flows, DNS to the gateway, the host ports opened on
 *                        purpose (--host-ports); everything else is dropped. Allowed traffic
 *                        RETURNs, so the host's own INPUT rules still apply to it.
 * Every rule carries a comment starting with TAG, which is how we find our own again. An
 * accept rule's comment also holds when it expires and the name that opened it,
 * `on-his-name exp=1764000000 example.com.`, so that the kernel alone says what is open
 * until when, and a restart reads it back. Rules written before expiry existed read
 * `on-his-name example.com.` and are still ours.
 * With `--backend ipset` the accept rules are one rule that matches an ipset instead:
 *   -i BR -p tcp -m multiport --dports PORTS -m set --match-set SET dst -j ACCEPT
 */

export const CHAIN = 'DOCKER-USER';
export const SOURCES_CHAIN = 'ON-HIS-NAME-SOURCES';
export const HOST_CHAIN = 'ON-HIS-NAME-INPUT';
/** Where a client with a policy of its own is sent to its policy's chain. */
export const CLIENTS_CHAIN = 'ON-HIS-NAME-CLIENTS';
/** Where what is about to be blocked is recorded (the blocked view), before each DROP. */
export const RECORD_CHAIN = 'ON-HIS-NAME-RECORD';
/** Chains that are ours from top to bottom: `on-his-name reset` flushes and deletes them, and every policy chain. */
export const OWN_CHAINS = [SOURCES_CHAIN, HOST_CHAIN, CLIENTS_CHAIN, RECORD_CHAIN] as const;
/**
 * The packet mark bit a policy chain in audit mode sets so that DOCKER-USER lets the packet
 * on to Docker's rules. A container cannot set it: a packet's mark is cleared as it leaves
 * the container's namespace. Another program on the host that uses this bit would collide.
 */
export const AUDIT_MARK = '0x10000000/0x10000000';
/** A policy's own chain: its accept rules, then a DROP. iptables takes chain names of 28 characters: the policy's 22 fit. */
export const POLICY_CHAIN_PREFIX = 'OHN-P-';
export const TAG = 'on-his-name';

export function policyChain(policy: string): string {
  return `${POLICY_CHAIN_PREFIX}${policy}`;
}

/** 'drop' is the last rule of a block or a policy chain, whatever its verdict (DROP, or audit mode's RETURN or MARK). */
export type Role = 'source-check' | 'established' | 'same-network' | 'clients' | 'audited' | 'accept' | 'set-accept' | 'record' | 'drop' | 'host-jump' | 'route';

export type Protocol = 'tcp' | 'udp';

export interface PortSpec {
  protocol: Protocol;
  port: number;
}

export interface OwnedRule {
  role: Role;
  bridge: string;
  /** For accept rules. */
  address?: string;
  port?: number;
  protocol?: Protocol;
  /** For set-accept rules: the ipset matched and the ports as listed (e.g. "80,443"). */
  set?: string;
  ports?: string;
  /** The DNS name recorded in an accept rule's comment, when there is one. */
  name?: string;
  /** Wall-clock unix seconds from an accept rule's comment; absent in the older format. */
  expiresAt?: number;
  /** The rule spec as listed by `iptables -S`, without the leading `-A CHAIN`. */
  spec: string;
  /** The chain it is in, when not DOCKER-USER. */
  chain?: string;
}

/** The chain a `-A CHAIN …` line is in, or undefined for any other line. */
export function chainOf(line: string): string | undefined {
  return /^-A (\S+) /.exec(line)?.[1];
}

/** Rule specs (without `-A CHAIN`) in the order they must appear. */
export function sourceCheckRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} source-check" -j ${SOURCES_CHAIN}`;
}

/** In DOCKER-USER, after same-network: a client with a policy of its own leaves for its policy's chain there. */
export function clientsRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} clients" -j ${CLIENTS_CHAIN}`;
}

/**
 * In ON-HIS-NAME-CLIENTS: `client` (an address or a range) goes to `target`, a policy chain
 * (by goto: its return goes back to DOCKER-USER, not on to the next route), or RETURN for
 * the default policy.
 */
export function routeRule(bridge: string, client: string, target: string): string {
  const bits = client.includes('/') ? '' : client.includes(':') ? '/128' : '/32';
  // iptables lists a match of every source as no match at all.
  const source = /\/0$/.test(client) ? '' : `-s ${client}${bits} `;
  return `${source}-i ${bridge} -m comment --comment "${TAG} client" ${target === 'RETURN' ? '-j' : '-g'} ${target}`;
}

/** In DOCKER-USER, after the clients rule: a packet a policy chain in audit mode marked leaves for Docker's rules. */
export function auditedRule(bridge: string): string {
  return `-i ${bridge} -m mark --mark ${AUDIT_MARK} -m comment --comment "${TAG} audited" -j RETURN`;
}

/** Ahead of each DROP: record what is about to be blocked. */
export function recordRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} record" -j ${RECORD_CHAIN}`;
}

/**
 * What ON-HIS-NAME-RECORD holds: match (client, protocol:port, destination) in `set`, which
 * counts the packet in an element already there; then add it, which makes a new element
 * of TCP and UDP with a count of one and leaves one already there alone. In that order:
 * the kernel starts an element it adds at one packet, and an add with --exist would reset
 * an element's count to one at every packet (so an add that refreshed the timeout counted
 * every element as two, however many packets). An element's timeout therefore runs from
 * its first packet since the daemon last emptied the set, not its latest.
 *
 * A counted packet returns at once, so only a new destination meets the add, and adds are
 * held to RECORD_ADDS_PER_SECOND: an add to a full set makes the kernel sweep part of it
 * (about 10 µs a packet, 2.5× what a drop costs otherwise), and a container spraying fresh
 * destinations would spend the host's CPU at that rate until the next read emptied the set.
 * The set holds 16,384 and is read every 5 s: more adds than that could not be kept anyway.
 * Without a set (no ipset here) it is empty, and the jump to it costs nothing more.
 */
export function recordChain(set: string | undefined): string[] {
  if (set === undefined) return [];
  return [
    `-m set --match-set ${set} src,dst,dst -m comment --comment "${TAG} count" -j RETURN`,
    ...(['tcp', 'udp'] as const).map(
      (protocol) => `-p ${protocol} -m limit --limit ${RECORD_ADDS_PER_SECOND}/sec --limit-burst ${RECORD_ADDS_BURST} -m comment --comment "${TAG} record" -j SET --add-set ${set} src,dst,dst`,
    ),
  ];
}

/** New blocked destinations recorded per second at most, and in a burst (iptables takes 10,000 at most; it prints rates in steps, 5000/sec as given). */
export const RECORD_ADDS_PER_SECOND = 5000;
export const RECORD_ADDS_BURST = 10_000;

/** The end of a policy chain: whatever its accepts did not take is dropped, or in audit mode marked and let through. */
export function policyDropRule(bridge: string, audit = false): string {
  if (audit) return `-i ${bridge} -m comment --comment "${TAG} policy-audit" -j MARK --set-xmark ${AUDIT_MARK}`;
  return `-i ${bridge} -m comment --comment "${TAG} policy-drop" -j DROP`;
}

export function establishedRule(bridge: string): string {
  return `-i ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "${TAG} established" -j RETURN`;
}

export function sameNetworkRule(bridge: string): string {
  return `-i ${bridge} -o ${bridge} -m comment --comment "${TAG} same-network" -j RETURN`;
}

/** `port` as a bare number is TCP, as --ports reads it. */
export function acceptRule(bridge: string, address: string, port: PortSpec | number, name?: string, expiresAt?: number): string {
  const { protocol, port: number } = typeof port === 'number' ? { protocol: 'tcp' as const, port } : port;
  return `-d ${address}/${address.includes(':') ? 128 : 32} -i ${bridge} -p ${protocol} -m ${protocol} --dport ${number} -m comment --comment "${acceptComment(name, expiresAt)}" -j ACCEPT`;
}

/** The ipset backend's accept rule for one protocol: new connections to PORTS of an address in SET. */
export function setAcceptRule(bridge: string, protocol: Protocol, ports: readonly number[], set: string): string {
  return `-i ${bridge} -p ${protocol} -m multiport --dports ${ports.join(',')} -m set --match-set ${set} dst -m comment --comment "${TAG} allowed-set" -j ACCEPT`;
}

/** The ipset backend's accept rules: one per protocol among `ports`, TCP first. */
export function setAcceptRules(bridge: string, ports: readonly PortSpec[], set: string): string[] {
  return (['tcp', 'udp'] as const)
    .map((protocol) => ({ protocol, numbers: ports.filter((p) => p.protocol === protocol).map((p) => p.port) }))
    .filter(({ numbers }) => numbers.length > 0)
    .map(({ protocol, numbers }) => setAcceptRule(bridge, protocol, numbers, set));
}

/** The end of our block: everything else from the bridge is dropped, or in audit mode returned to Docker's rules. */
export function dropRule(bridge: string, audit = false): string {
  if (audit) return `-i ${bridge} -m comment --comment "${TAG} audit" -j RETURN`;
  return `-i ${bridge} -m comment --comment "${TAG} default-drop" -j DROP`;
}

/** In INPUT: what the bridge sends to the host itself goes through our chain first. */
export function hostJumpRule(bridge: string): string {
  return `-i ${bridge} -m comment --comment "${TAG} host" -j ${HOST_CHAIN}`;
}

/** What ON-HIS-NAME-SOURCES holds for a bridge: its subnets pass (RETURN), any other source is dropped. */
export function sourcesChain(bridge: string, subnets: readonly string[]): string[] {
  return [
    ...subnets.map((subnet) => `-s ${subnet} -i ${bridge} -m comment --comment "${TAG} source" -j RETURN`),
    `-i ${bridge} -m comment --comment "${TAG} spoofed" -j DROP`,
  ];
}

/** The link-local range IPv6 neighbour discovery and router solicitation speak from. */
export const IPV6_LINK_LOCAL = 'fe80::/10';
/** Router solicitation, neighbour solicitation and advertisement: IPv6 does not work without them. */
const NEIGHBOUR_DISCOVERY = [133, 135, 136];

/** A DNS server on the host that containers may ask (the gateway, port 53), over UDP and TCP. */
export interface DnsTarget {
  address: string;
  port: number;
}

export interface HostAccess {
  family: 4 | 6;
  /** Where on the host containers ask DNS. */
  dns: readonly DnsTarget[];
  /** Host ports opened to the containers on purpose. */
  hostPorts: readonly PortSpec[];
}

/** What ON-HIS-NAME-INPUT holds for a bridge: what a container may send the host itself. */
export function hostChain(bridge: string, access: HostAccess): string[] {
  const comment = (what: string) => `-m comment --comment "${TAG} ${what}"`;
  const prefix = access.family === 6 ? 128 : 32;
  return [
    ...(access.family === 6
      ? NEIGHBOUR_DISCOVERY.map((type) => `-i ${bridge} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} ${comment('neighbour-discovery')} -j RETURN`)
      : []),
    `-i ${bridge} ${comment('source-check')} -j ${SOURCES_CHAIN}`,
    `-i ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED ${comment('established')} -j RETURN`,
    ...access.dns.flatMap(({ address, port }) =>
      (['udp', 'tcp'] as const).map((protocol) => `-d ${address}/${prefix} -i ${bridge} -p ${protocol} -m ${protocol} --dport ${port} ${comment('dns')} -j RETURN`),
    ),
    ...access.hostPorts.map(({ protocol, port }) => `-i ${bridge} -p ${protocol} -m ${protocol} --dport ${port} ${comment('host-port')} -j RETURN`),
    `-i ${bridge} ${comment('host-drop')} -j DROP`,
  ];
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
 * Recognise one of our rules in an `iptables -S` line of DOCKER-USER, INPUT, a policy
 * chain or the clients chain; undefined for anything that is not ours (or not a rule),
 * which we then never touch.
 */
export function parseOwnedRule(line: string): OwnedRule | undefined {
  const words = splitRule(line);
  const chain = words[1] ?? '';
  if (words[0] !== '-A' || (chain !== CHAIN && chain !== 'INPUT' && chain !== CLIENTS_CHAIN && !chain.startsWith(POLICY_CHAIN_PREFIX))) return undefined;
  const option = (name: string): string | undefined => {
    const at = words.indexOf(name, 2);
    return at >= 0 ? words[at + 1] : undefined;
  };
  const comment = option('--comment');
  if (comment === undefined || (comment !== TAG && !comment.startsWith(`${TAG} `))) return undefined;
  const bridge = option('-i');
  if (bridge === undefined) return undefined;
  const spec = line.trim().replace(/^-A\s+\S+\s+/, '');
  const where = chain === CHAIN ? {} : { chain };
  const target = option('-j');
  if (chain === 'INPUT') return target === HOST_CHAIN ? { role: 'host-jump', bridge, spec } : undefined;
  if (chain === CLIENTS_CHAIN) return { role: 'route', bridge, spec, ...where };
  if (target === SOURCES_CHAIN) return { role: 'source-check', bridge, spec, ...where };
  if (target === CLIENTS_CHAIN) return { role: 'clients', bridge, spec, ...where };
  if (target === RECORD_CHAIN) return { role: 'record', bridge, spec, ...where };
  if (target === 'DROP' || target === 'MARK' || (target === 'RETURN' && comment === `${TAG} audit`)) return { role: 'drop', bridge, spec, ...where };
  if (target === 'RETURN' && comment === `${TAG} audited`) return { role: 'audited', bridge, spec, ...where };
  if (target === 'RETURN' && option('--ctstate') !== undefined) return { role: 'established', bridge, spec, ...where };
  if (target === 'RETURN' && option('-o') === bridge) return { role: 'same-network', bridge, spec, ...where };
  const set = option('--match-set');
  if (target === 'ACCEPT' && set !== undefined) return { role: 'set-accept', bridge, set, ports: option('--dports') ?? '', spec, ...where };
  if (target === 'ACCEPT') {
    const address = option('-d')?.replace(/\/(32|128)$/, '');
    const port = Number(option('--dport'));
    const protocol = option('-p');
    const details = parseAcceptComment(comment.slice(TAG.length + 1));
    if (address && Number.isInteger(port) && (protocol === 'tcp' || protocol === 'udp')) return { role: 'accept', bridge, address, port, protocol, spec, ...where, ...details };
  }
  return undefined;
}
