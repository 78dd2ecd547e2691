/**
 * examples/compose.yaml and examples/policies.yaml, read as Docker Compose and on-his-name
 * would read them (there is no compose binary here): every service is on the external
 * network on-his-name with the gateway as its DNS server, its labels are ones the daemon
 * reads and give it a policy of its own (never the refusing one), and the policy file is
 * one `on-his-name check` takes.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCheck } from '../../src/admin/check.js';
import { parseConfig } from '../../src/config/config.js';
import { LABEL_PREFIX, LABELS, PolicySet } from '../../src/policy/policies.js';
import { parsePolicyFile } from '../../src/policy/policy-file.js';

const COMPOSE = fileURLToPath(new URL('../../examples/compose.yaml', import.meta.url));
const POLICIES = fileURLToPath(new URL('../../examples/policies.yaml', import.meta.url));

interface Service {
  image?: string;
  labels?: Record<string, string> | string[];
  dns?: string | string[];
  networks?: string[] | Record<string, unknown>;
}
const compose = parse(readFileSync(COMPOSE, 'utf8')) as { services: Record<string, Service>; networks: Record<string, { external?: boolean }> };
const services = Object.entries(compose.services);
/** Compose takes labels as a map or as KEY=VALUE items. */
const labelsOf = (service: Service): Record<string, string> =>
  Array.isArray(service.labels) ? Object.fromEntries(service.labels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) : { ...service.labels };

describe('examples/policies.yaml', () => {
  it('is a policy file on-his-name check takes, with nothing on the command line: the default policy opens nothing', async () => {
    let out = '';
    expect(await runCheck(parseConfig(['check', '--policy', POLICIES], {}), { write: (t: string) => (out += t) })).toBe(0);
    expect(out).toMatch(/^default +tcp\/443 +\(every other client\) +\(none: opens nothing\)$/m);
    expect(out).toMatch(/^ci +tcp\/443 tcp\/22 /m);
  });
});

describe('examples/compose.yaml', () => {
  const policies = PolicySet.compile([], [], parsePolicyFile(readFileSync(POLICIES, 'utf8'), POLICIES));

  it('puts every service on the external network on-his-name, asking DNS on its gateway', () => {
    expect(compose.networks['on-his-name']).toEqual({ external: true });
    expect(services.length).toBeGreaterThanOrEqual(2);
    for (const [name, service] of services) {
      const networks = Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {});
      expect(networks, name).toEqual(['on-his-name']);
      // The README's gateway, or the one Docker gave the network (ON_HIS_NAME_DNS).
      expect([service.dns].flat(), name).toEqual(['${ON_HIS_NAME_DNS:-172.18.0.1}']);
    }
  });

  it('labels each service with labels the daemon reads, giving each a different policy, none refused', () => {
    const known: string[] = Object.values(LABELS);
    const given = services.map(([name, service]) => {
      const labels = labelsOf(service);
      for (const key of Object.keys(labels).filter((k) => k.startsWith(LABEL_PREFIX))) expect(known, `${name}: ${key}`).toContain(key);
      const policy = policies.forLabels(labels, `${name}`.padEnd(64, '0'));
      expect(policy, `${name} has no on-his-name label`).toBeDefined();
      expect(policy!.refusal, name).toBeUndefined();
      return policy!.name;
    });
    expect(new Set(given).size).toBe(services.length);
    // Both ways of picking one: a policy of the file by name, and a service's own patterns.
    expect(services.some(([, s]) => labelsOf(s)[LABELS.policy] !== undefined)).toBe(true);
    expect(services.some(([, s]) => labelsOf(s)[LABELS.allow] !== undefined)).toBe(true);
  });
});
