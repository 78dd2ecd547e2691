import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ApplyError, ConfigError } from '../../../src/util/errors.js';
import { IpsetBackend, destroyOwnedSet } from '../../../src/firewall/ipset-backend.js';
import { headRules, tailRules } from '../../../src/firewall/planner.js';
import { acceptRule, dropRule, establishedRule, sameNetworkRule, setAcceptRule } from '../../../src/firewall/rules.js';
import { fakeIptables } from '../../support/iptables.js';
import { fakeIpset } from '../../support/ipset.js';
import { testLayout } from '../../support/layout.js';

const layout = testLayout();
const NOW = 1_700_000_000;
const SET = 'on-his-name-v4';
const ours = 'create on-his-name-v4 hash:ip family inet hashsize 1024 maxelem 262144 timeout 0 counters comment bucketsize 12 initval 0x1';

function backend(ipset = fakeIpset(), iptables = fakeIptables()) {
  return { ipset, iptables, backend: new IpsetBackend({ ipset: ipset.runner, iptables: iptables.runner, layout, nowSeconds: () => NOW, maxElements: 1000 }) };
}

describe('IpsetBackend', () => {
  it('creates the set before the rule that names it, then installs the block ahead of the RETURN', async () => {
    const { ipset, iptables, backend: b } = backend();
    expect(await b.sync()).toEqual({ adopted: [], rebuilt: true, bypasses: [] });
    expect(ipset.scripts).toEqual([`create ${SET} hash:ip family inet counters timeout 0 comment maxelem 1000\n`]);
    expect(iptables.chain).toEqual([
      '-N DOCKER-USER',
      ...headRules('br0').map((spec) => `-A DOCKER-USER ${spec}`),
      `-A DOCKER-USER ${setAcceptRule('br0', 'tcp', [80, 443], SET)}`,
      ...tailRules({ bridge: 'br0' }).map((spec) => `-A DOCKER-USER ${spec}`),
      '-A DOCKER-USER -j RETURN',
    ]);
  });

  it('adopts the elements of an existing set with their expiries, and changes nothing', async () => {
    const ipset = fakeIpset({ [SET]: { create: ours, adds: ['198.51.100.7 timeout 120 packets 4 bytes 240 comment "x.test."', '198.51.100.8 timeout 0 packets 0 bytes 0'] } });
    const first = backend(ipset);
    await first.backend.sync();
    const scripts = ipset.scripts.length;
    const again = backend(ipset, first.iptables);
    expect(await again.backend.sync()).toEqual({
      adopted: [{ address: '198.51.100.7', name: 'x.test.', expiresAt: NOW + 120 }, { address: '198.51.100.8' }],
      rebuilt: false,
      bypasses: [],
    });
    expect(ipset.scripts).toHaveLength(scripts);
    expect(first.iptables.scripts).toHaveLength(1);
  });

  it('moves addresses opened by the iptables backend into the set before their rules go', async () => {
    const iptables = fakeIptables([
      '-N DOCKER-USER',
      `-A DOCKER-USER ${establishedRule('br0')}`,
      `-A DOCKER-USER ${sameNetworkRule('br0')}`,
      `-A DOCKER-USER ${acceptRule('br0', '198.51.100.9', 80, 'old.test.')}`,
      `-A DOCKER-USER ${dropRule('br0')}`,
      '-A DOCKER-USER -j RETURN',
    ]);
    const { ipset, backend: b } = backend(fakeIpset(), iptables);
    expect(await b.sync()).toEqual({ adopted: [{ address: '198.51.100.9', name: 'old.test.' }], rebuilt: true, bypasses: [] });
    expect(ipset.scripts[1]).toBe(`add ${SET} 198.51.100.9 timeout 0 comment "old.test."\n`);
    expect(iptables.chain.some((l) => l.includes('198.51.100.9'))).toBe(false);
  });

  it('refuses a set of the same name but another type, naming on-his-name reset', async () => {
    const ipset = fakeIpset({ [SET]: { create: `create ${SET} hash:ip,port family inet hashsize 1024 maxelem 65536` } });
    const { iptables, backend: b } = backend(ipset);
    const failure = b.sync();
    await expect(failure).rejects.toThrow(ConfigError);
    await expect(failure).rejects.toThrow(/ipset "on-his-name-v4" exists but cannot be used: it needs type hash:ip \(it is hash:ip,port\).*"on-his-name reset"/);
    expect(iptables.scripts).toEqual([]);
  });

  it('applies adds and removals in one restore, and passes its failure on', async () => {
    const { ipset, backend: b } = backend();
    await b.sync();
    await b.apply([{ address: '198.51.100.7', name: 'x.test.', expiresAt: NOW + 60 }], [{ address: '198.51.100.1' }]);
    expect(ipset.scripts.at(-1)).toBe(`del ${SET} 198.51.100.1\nadd ${SET} 198.51.100.7 timeout 60 comment "x.test."\n`);
    expect([...ipset.sets.get(SET)!.members.keys()]).toEqual(['198.51.100.7']);
    ipset.failNext(1);
    await expect(b.apply([{ address: '198.51.100.8' }], [])).rejects.toThrow(ApplyError);
  });

  it('moves the elements of a set made too small for --max-ips into a larger one, without a moment empty', async () => {
    const small = 'create on-his-name-v4 hash:ip family inet hashsize 1024 maxelem 10 timeout 0 counters comment bucketsize 12 initval 0x1';
    const ipset = fakeIpset({ [SET]: { create: small, adds: ['198.51.100.7 timeout 120 packets 4 bytes 240 comment "x.test."'] } });
    const { backend: b } = backend(ipset);
    const spare = `ohn-grow-${createHash('sha256').update(SET).digest('hex').slice(0, 16)}`;
    expect((await b.sync()).adopted).toEqual([{ address: '198.51.100.7', name: 'x.test.', expiresAt: NOW + 120 }]);
    expect(ipset.scripts[0]).toBe(
      [
        `create ${spare} hash:ip family inet counters timeout 0 comment maxelem 1000`,
        `add ${spare} 198.51.100.7 timeout 120 packets 4 bytes 240 comment "x.test."`,
        `swap ${spare} ${SET}`,
        `destroy ${spare}`,
        '',
      ].join('\n'),
    );
    expect(ipset.sets.get(SET)?.create).toContain('maxelem 1000');
    expect(ipset.sets.get(SET)?.members.has('198.51.100.7')).toBe(true);
    expect(ipset.sets.has(`${spare}`)).toBe(false);
  });
  it("grows a long policy's set through a spare whose name ipset takes (31 characters at most)", async () => {
    const set = `ohn-p-${'a'.repeat(22)}-v4`;
    const small = `create ${set} hash:ip family inet hashsize 1024 maxelem 10 timeout 0 counters comment bucketsize 12 initval 0x1`;
    const ipset = fakeIpset({ [set]: { create: small, adds: [] } });
    const b = new IpsetBackend({ ipset: ipset.runner, iptables: fakeIptables().runner, layout, set, nowSeconds: () => NOW, maxElements: 1000 });
    await b.sync();
    const created = ipset.scripts[0]!.split('\n')[0]!.split(' ')[1]!;
    expect(created).toMatch(/^ohn-grow-[0-9a-f]{16}$/);
    expect(created.length).toBeLessThanOrEqual(31);
    expect(ipset.sets.get(set)?.create).toContain('maxelem 1000');
  });


  it('reset destroys the set, and says so only when there was one', async () => {
    const { ipset, backend: b } = backend();
    await b.sync();
    expect(await destroyOwnedSet(ipset.runner)).toBe(true);
    expect(ipset.sets.size).toBe(0);
    expect(await destroyOwnedSet(ipset.runner)).toBe(false);
  });
});
