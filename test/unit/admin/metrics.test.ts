import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/admin/metrics.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

describe('Metrics', () => {
  it('reads both families at scrape time, and puts each time to the kernel in its bucket', async () => {
    const metrics = new Metrics();
    const layout = testLayout('br0', [443]);
    const v4 = new Firewall({ runner: fakeIptables().runner, layout, log: recordingLogger().log, onInKernel: metrics.inKernelHook(4) });
    const v6 = new Firewall({ runner: fakeIptables().runner, layout: { ...layout, family: 6 }, log: recordingLogger().log, onInKernel: metrics.inKernelHook(6) });
    await Promise.all([v4.start(), v6.start()]);
    const pipeline = { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0, allowsByPattern: new Map<string, Map<string, number>>() };
    const policy = { name: 'default' };
    metrics.watch({ pipeline, dnstap: { connections: 0, dataFrames: 0, oversizedFrames: 0, protocolErrors: 0 }, firewalls: () => [{ family: 4, firewall: v4, policy }, { family: 6, firewall: v6, policy }] });

    const scrape = async () => metrics.registry.metrics();
    expect(await scrape()).toContain('on_his_name_addresses_installed{family="6",policy="default"} 0');

    v6.allow('2001:db8::1');
    v6.allow('2001:db8::2');
    await v6.settled();
    pipeline.decisions.allow = 2;
    pipeline.allowsByPattern.set('default', new Map([['*.example.com.', 2]]));
    metrics.inKernelHook(4)(3, 2); // two addresses, 3 ms each

    const text = await scrape();
    expect(text).toContain('on_his_name_addresses_installed{family="6",policy="default"} 2');
    expect(text).toContain('on_his_name_addresses_installed{family="4",policy="default"} 0');
    expect(text).toContain('on_his_name_decisions_total{outcome="allow"} 2');
    expect(text).toContain('on_his_name_pattern_allows_total{policy="default",pattern="*.example.com."} 2');
    expect(text).toContain('on_his_name_rule_latency_seconds_count{family="6"} 2');
    expect(text).toContain('on_his_name_rule_latency_seconds_bucket{le="0.0025",family="4"} 0');
    expect(text).toContain('on_his_name_rule_latency_seconds_bucket{le="0.005",family="4"} 2');
    expect(text).toContain('on_his_name_rule_latency_seconds_sum{family="4"} 0.006');

    pipeline.decisions.allow = 5; // counters follow the stats, never double-count
    expect(await scrape()).toContain('on_his_name_decisions_total{outcome="allow"} 5');
  });
});
