/**
 * Ways a container's traffic gets past our rules without meeting them, read from one
 * `iptables -S` listing. Pure.
 *
 * Our DROP only means something if the packet reaches it: FORWARD must jump to
 * DOCKER-USER (Docker's nftables backend, `"iptables": false`, or a reboot after either
 * leaves DOCKER-USER with no jump, and every rule in it is then ignored), and no rule
 * ahead of our block (in FORWARD before that jump, or in DOCKER-USER above us, or in INPUT
 * above our jump) may ACCEPT or RETURN the bridge's traffic. Such a rule is reported, not
 * removed: it is someone else's. The daemon refuses to start with one, and reports it in
 * the log and /healthz at run time.
 *
 * A rule "may accept" the bridge's traffic when its target is ACCEPT or RETURN, its
 * in-interface is absent or matches the bridge, it is not limited to established flows,
 * and its source range, if any, overlaps the network's subnets. Anything else it matches
 * on is assumed to match: a partial bypass is still a bypass.
 */
import { overlaps } from '../util/cidr.js';
import { CHAIN, HOST_CHAIN, TAG, splitRule } from './rules.js';

export function findBypasses(listing: readonly string[], bridge: string, subnets: readonly string[], options: { rebuilt: boolean }): string[] {
  const problems: string[] = [];
  const chain = (name: string) => listing.filter((line) => line.startsWith(`-A ${name} `));
  const forward = chain('FORWARD');
  const jumpAt = forward.findIndex((line) => targetOf(line) === CHAIN && matchesBridge(line, bridge));
  if (jumpAt < 0) {
    problems.push(
      `FORWARD does not jump to ${CHAIN} for ${bridge}, so no rule there is ever met (Docker's nftables firewall backend, ` +
        `"iptables": false, or a removed jump): use --backend nftables, or restore the jump with "iptables -I FORWARD -j ${CHAIN}"`,
    );
  }
  const ahead = (lines: readonly string[], where: string) => {
    for (const line of lines) {
      if (mayAccept(line, bridge, subnets)) problems.push(`a rule ${where} lets traffic from ${bridge} past on-his-name: "${line}"; remove it or narrow it`);
    }
  };
  if (jumpAt > 0) ahead(forward.slice(0, jumpAt), `in FORWARD before the jump to ${CHAIN}`);
  if (!options.rebuilt) {
    const user = chain(CHAIN);
    const ours = user.findIndex((line) => isOurs(line, bridge));
    if (ours > 0) ahead(user.slice(0, ours), `above on-his-name's block in ${CHAIN}`);
  }
  const input = chain('INPUT');
  const hostJump = input.findIndex((line) => targetOf(line) === HOST_CHAIN && isOurs(line, bridge));
  if (hostJump > 0) ahead(input.slice(0, hostJump), "in INPUT above on-his-name's host rules");
  return problems;
}

function isOurs(line: string, bridge: string): boolean {
  const words = splitRule(line);
  const comment = option(words, '--comment');
  return comment !== undefined && (comment === TAG || comment.startsWith(`${TAG} `)) && option(words, '-i') === bridge;
}

function mayAccept(line: string, bridge: string, subnets: readonly string[]): boolean {
  const target = targetOf(line);
  if (target !== 'ACCEPT' && target !== 'RETURN') return false;
  if (!matchesBridge(line, bridge)) return false;
  const words = splitRule(line);
  const states = option(words, '--ctstate') ?? option(words, '--state');
  if (states !== undefined && !negated(words, '--ctstate') && !negated(words, '--state') && states.split(',').every((s) => s === 'ESTABLISHED' || s === 'RELATED')) {
    return false;
  }
  const source = option(words, '-s');
  if (source !== undefined && !negated(words, '-s') && subnets.length > 0 && !subnets.some((subnet) => overlaps(source, subnet))) return false;
  return true;
}

function matchesBridge(line: string, bridge: string): boolean {
  const words = splitRule(line);
  const iface = option(words, '-i');
  if (iface === undefined) return true;
  const same = iface === bridge || (iface.endsWith('+') && bridge.startsWith(iface.slice(0, -1)));
  return negated(words, '-i') ? !same : same;
}

function targetOf(line: string): string | undefined {
  return option(splitRule(line), '-j');
}

function option(words: readonly string[], name: string): string | undefined {
  const at = words.indexOf(name, 2);
  return at >= 0 ? words[at + 1] : undefined;
}

function negated(words: readonly string[], name: string): boolean {
  return words[words.indexOf(name, 2) - 1] === '!';
}
