/** `on-his-name reset`: remove every rule we own in DOCKER-USER, DROP included, and say which. */
import type { IptablesRunner } from './iptables.js';
import { ownedRules, planRemoval } from './planner.js';
import type { OwnedRule } from './rules.js';

/** With `bridge`, only the rules that name that bridge (a bridge the network has left). */
export async function removeOwnedRules(runner: IptablesRunner, bridge?: string): Promise<OwnedRule[]> {
  const owned = ownedRules(await runner.list()).filter((r) => bridge === undefined || r.bridge === bridge);
  const script = planRemoval(owned);
  if (script) await runner.restore(script);
  return owned;
}
