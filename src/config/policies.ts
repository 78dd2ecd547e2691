/**
 * The policies as the configuration gives them: the command line's patterns and ports,
 * and the policy file if there is one, read whole and checked before anything uses it.
 */
import { readFile } from 'node:fs/promises';
import { parsePolicyFile } from '../policy/policy-file.js';
import { PolicySet } from '../policy/policies.js';
import { ConfigError } from '../util/errors.js';
import type { Config } from './config.js';
import { MAX_SET_PORTS } from './ports.js';

export async function loadPolicies(config: Pick<Config, 'patterns' | 'ports' | 'allowAll' | 'policyFile' | 'backend' | 'audit'>): Promise<PolicySet> {
  // The ipset backend's rule takes 15 ports of a protocol: a policy with more would never get its chain.
  const options = { allowAll: config.allowAll, audit: config.audit, ...(config.backend === 'ipset' ? { maxSetPorts: MAX_SET_PORTS } : {}) };
  if (config.policyFile === undefined) return PolicySet.compile(config.patterns, config.ports, undefined, options);
  let text: string;
  try {
    text = await readFile(config.policyFile, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the policy file ${config.policyFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check --policy`, { cause: err });
  }
  return PolicySet.compile(config.patterns, config.ports, parsePolicyFile(text, config.policyFile, { allowAll: config.allowAll, ...(options.maxSetPorts !== undefined ? { maxSetPorts: options.maxSetPorts } : {}) }), options);
}
