/** `on-his-name reset`: remove every rule we own in DOCKER-USER, DROP included, and say which. */
import type { IptablesRunner } from './iptables.js';
import { ownedRules, planRemoval } from './planner.js';
import type { OwnedRule } from './rules.js';

export async function removeOwnedRules(runner: IptablesRunner): Promise<OwnedRule[]> {
  const owned = ownedRules(await runner.list());
  const script = planRemoval(owned);
  if (script) await runner.restore(script);
  return owned;
}
