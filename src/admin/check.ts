/**
 * `on-his-name check`: read the command line and the policy file as the daemon would, and
 * print the policies they make, without touching the kernel or Docker. A mistake is the
 * same one line the daemon (and a reload) would give, exit 2; run it before a reload.
 */
import { policiesView } from './api.js';
import { renderPolicies } from './table.js';
import { Clients } from '../policy/clients.js';
import type { Config } from '../config/config.js';
import { loadPolicies } from '../config/policies.js';

export async function runCheck(config: Config, out: { write(text: string): unknown } = process.stdout): Promise<number> {
  const policies = await loadPolicies(config);
  const view = policiesView(new Clients(policies), config.policyFile, null);
  const patterns = view.policies.reduce((n, p) => n + p.patterns.length, 0);
  const source = config.policyFile ? `${config.policyFile} and the command line` : 'the command line';
  out.write(`${renderPolicies(view).join('\n')}\n\n${source}: ${view.policies.length} ${view.policies.length === 1 ? 'policy' : 'policies'}, ${patterns} pattern(s): OK\n`);
  return 0;
}
