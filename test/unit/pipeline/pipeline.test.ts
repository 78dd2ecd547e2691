import { describe, expect, it } from 'vitest';
import { Pipeline } from '../../../src/pipeline/pipeline.js';
import { Patterns } from '../../../src/policy/patterns.js';
import { AddressGuard } from '../../../src/policy/special-addresses.js';
import { clientResponse, dnsResponse } from '../../support/dnstap.js';
import { recordingLogger } from '../../support/log.js';

const A = (name: string, data: string) => ({ type: 'A' as const, name, data, ttl: 60 });
const nothingFilters = { firewall: () => undefined };
const producer = { id: 1 } as never;

function pipeline(audit = false) {
  const answers: Array<[string | undefined, string, readonly string[], boolean]> = [];
  const policy = { name: 'default', patterns: Patterns.compile(['allowed.test.']), audit };
  const p = new Pipeline({ forClient: () => ({ policy }) }, new AddressGuard(), nothingFilters, recordingLogger().log, {
    onAnswer: (...args) => answers.push(args),
  });
  return { p, answers };
}

describe('Pipeline, for the blocked view', () => {
  it('hands over every answer with addresses, the denied ones too, saying which were allowed', () => {
    const { p, answers } = pipeline();
    p.onFrame(clientResponse('192.0.2.10', 'allowed.test', [A('allowed.test', '198.51.100.1')]), producer);
    p.onFrame(clientResponse('192.0.2.10', 'tracker.test', [A('tracker.test', '198.51.100.7')]), producer);
    expect(p.onResponse(dnsResponse('tracker.test', [A('tracker.test', '198.51.100.8')]), '192.0.2.11')?.decision.outcome).toBe('deny');
    expect(answers).toEqual([
      ['192.0.2.10', 'allowed.test.', ['198.51.100.1'], true],
      ['192.0.2.10', 'tracker.test.', ['198.51.100.7'], false],
      ['192.0.2.11', 'tracker.test.', ['198.51.100.8'], false],
    ]);
  });

  it('admits a denied name for a policy in audit mode (no NXDOMAIN: audit blocks nothing), and counts the deny only for one that enforces', () => {
    const enforcing = pipeline().p;
    expect(enforcing.admits('tracker.test.', '192.0.2.10')).toBe(false);
    expect(enforcing.stats.decisions.deny).toBe(1);
    const auditing = pipeline(true).p;
    expect(auditing.admits('tracker.test.', '192.0.2.10')).toBe(true);
    expect(auditing.stats.decisions.deny).toBe(0);
  });
});
