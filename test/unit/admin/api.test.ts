import { describe, expect, it } from 'vitest';
import { acceptedView, type ApiSources } from '../../../src/admin/api.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';
import { testLayout } from '../../support/layout.js';

describe('acceptedView', () => {
  it("names the container at the client's address only when it has the policy the address is open for: one that took the address since, under another policy, did not ask", async () => {
    const firewall = () => new Firewall({ runner: fakeIptables().runner, layout: testLayout('br0', [80]), log: recordingLogger().log });
    const [byDefault, byWeb] = [firewall(), firewall()];
    await Promise.all([byDefault.start(), byWeb.start()]);
    // A container without labels at 172.18.0.2 opened allowed.test; it is gone, and web now has 172.18.0.2 and opened it for itself.
    byDefault.allow('198.51.100.10', 'allowed.test.', 60, '172.18.0.2');
    byWeb.allow('198.51.100.10', 'allowed.test.', 60, '172.18.0.2');
    await Promise.all([byDefault.settled(), byWeb.settled()]);
    const sources = {
      pipeline: { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0, allowsByPattern: new Map() },
      dnstap: { connections: 0, dataFrames: 0, oversizedFrames: 0, protocolErrors: 0 },
      firewalls: () => [
        { family: 4 as const, firewall: byDefault, policy: { name: 'default' } },
        { family: 4 as const, firewall: byWeb, policy: { name: 'c-web' } },
      ],
      policies: () => ({ file: null, policies: [], reload: null }),
      containerAt: (address: string) => (address === '172.18.0.2' ? { id: 'w', name: 'web', policy: 'c-web' } : undefined),
    } as unknown as ApiSources;
    const rows = (await acceptedView(sources)).addresses.map((a) => [a.address, a.policy, a.client, a.container]);
    expect(rows).toEqual([
      ['198.51.100.10', 'default', '172.18.0.2', null],
      ['198.51.100.10', 'c-web', '172.18.0.2', 'web'],
    ]);
  });
});
