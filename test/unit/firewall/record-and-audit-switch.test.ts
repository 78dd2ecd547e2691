/**
 * What the namespace suites (blocked.test.ts, audit.test.ts) found in the record chain and
 * in a policy chain's audit switch, pinned down as text.
 */
import { describe, expect, it } from 'vitest';
import { planPolicySetSync, planPolicySync } from '../../../src/firewall/planner.js';
import { acceptRule, policyDropRule, recordChain, recordRule, setAcceptRules } from '../../../src/firewall/rules.js';
import { testLayout } from '../../support/layout.js';

describe('ON-HIS-NAME-RECORD', () => {
  it('counts an element already there before it adds a new one, and never re-adds with --exist (which resets the count to one)', () => {
    expect(recordChain('ohn-blocked-v4')).toEqual([
      '-m set --match-set ohn-blocked-v4 src,dst,dst -m comment --comment "on-his-name count" -j RETURN',
      '-p tcp -m limit --limit 5000/sec --limit-burst 10000 -m comment --comment "on-his-name record" -j SET --add-set ohn-blocked-v4 src,dst,dst',
      '-p udp -m limit --limit 5000/sec --limit-burst 10000 -m comment --comment "on-his-name record" -j SET --add-set ohn-blocked-v4 src,dst,dst',
    ]);
    expect(recordChain(undefined)).toEqual([]);
  });
});

describe("a policy chain whose audit mode switched and nothing else", () => {
  const chain = 'OHN-P-web';
  const A = (spec: string) => `-A ${chain} ${spec}`;
  const accepts = [acceptRule('br0', '198.51.100.7', 80, 'a.test.', 2_000_000_000), acceptRule('br0', '198.51.100.7', 443, 'a.test.', 2_000_000_000)];
  const listing = (audit: boolean) => ['-N DOCKER-USER', `-N ${chain}`, '-N ON-HIS-NAME-RECORD', ...[...accepts, recordRule('br0'), policyDropRule('br0', audit)].map(A)];

  it.each([true, false])('per-address rules: only the verdict is replaced, in place (audit now %s)', (audit) => {
    const plan = planPolicySync(listing(!audit), { ...testLayout(), audit }, chain);
    expect(plan.script).toBe(`*filter\n-R ${chain} 4 ${policyDropRule('br0', audit)}\nCOMMIT\n`);
    expect(plan.rebuilt).toBe(false);
    expect(plan.adopted.map((a) => a.address)).toEqual(['198.51.100.7']);
    expect(planPolicySync(listing(audit), { ...testLayout(), audit }, chain).script).toBeUndefined();
  });

  it.each([true, false])('the ipset backend: only the verdict is replaced, in place (audit %s)', (audit) => {
    const layout = { ...testLayout(), audit };
    const rules = (verdict: boolean) => ['-N DOCKER-USER', `-N ${chain}`, ...[...setAcceptRules('br0', layout.ports, 'ohn-p-web-v4'), recordRule('br0'), policyDropRule('br0', verdict)].map(A)];
    const plan = planPolicySetSync(rules(!audit), layout, chain, 'ohn-p-web-v4');
    expect(plan.script).toBe(`*filter\n-R ${chain} 3 ${policyDropRule('br0', audit)}\nCOMMIT\n`);
    expect(plan.rebuilt).toBe(false);
    expect(planPolicySetSync(rules(audit), layout, chain, 'ohn-p-web-v4').script).toBeUndefined();
  });

  it('anything else out of order still rewrites the chain whole', () => {
    const drifted = listing(false).filter((line) => !line.includes('--dport 443'));
    expect(planPolicySync(drifted, { ...testLayout(), audit: true }, chain).script).toMatch(new RegExp(`^\\*filter\\n:${chain} - \\[0:0\\]\\n`));
  });
});
