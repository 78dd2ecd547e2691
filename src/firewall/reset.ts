/** `on-his-name reset`: remove every rule we own in DOCKER-USER and INPUT, DROP included, and our chains, and say which. */
import type { IptablesRunner } from './iptables.js';
import { ownedRules, planRemoval, restoreScript } from './planner.js';
import { OWN_CHAINS, POLICY_CHAIN_PREFIX, chainOf, type OwnedRule } from './rules.js';

export interface Removed {
  rules: OwnedRule[];
  /** Our chains, flushed and deleted (only when every bridge's rules go). */
  chains: Array<{ chain: string; rules: number }>;
}

/**
 * With `bridge`, only the rules that name that bridge (a bridge the network has left); the
 * chains stay, since the current bridge's rules jump to them. Without it, everything.
 */
export async function removeOwnedRules(runner: IptablesRunner, bridge?: string): Promise<OwnedRule[]> {
  return (await removeOwned(runner, bridge)).rules;
}

export async function removeOwned(runner: IptablesRunner, bridge?: string): Promise<Removed> {
  const listing = await runner.list();
  const policyChains = listing.filter((line) => line.startsWith(`-N ${POLICY_CHAIN_PREFIX}`)).map((line) => line.slice(3));
  const chains =
    bridge === undefined
      ? [...OWN_CHAINS, ...policyChains]
          .filter((chain) => listing.includes(`-N ${chain}`))
          .map((chain) => ({ chain, rules: listing.filter((l) => chainOf(l) === chain).length }))
      : [];
  // A chain flushed whole is reported as one line, not rule by rule.
  const flushed = new Set(chains.map((c) => c.chain));
  const rules = ownedRules(listing).filter((r) => (bridge === undefined || r.bridge === bridge) && !(r.chain && flushed.has(r.chain)));
  // Every jump goes first, ours between our chains too: the kernel refuses to delete a chain a rule still names.
  const lines = [
    ...(planRemoval(rules)?.split('\n').filter((line) => line.startsWith('-D ')) ?? []),
    ...chains.map(({ chain }) => `-F ${chain}`),
    ...chains.map(({ chain }) => `-X ${chain}`),
  ];
  if (lines.length) await runner.restore(restoreScript(lines));
  return { rules, chains };
}
