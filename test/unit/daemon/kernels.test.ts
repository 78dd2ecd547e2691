/**
 * The iptables and ipset kernels of the policies: which kernel object each policy gets, the
 * routes written to ON-HIS-NAME-CLIENTS, and the chains and sets of policies no longer in
 * use pruned once no route names them, only in the families routed. Fake iptables (which
 * refuses a jump to a missing chain and the deletion of one still jumped to, as the kernel
 * does) and fake ipset.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { Closers } from '../../../src/daemon/closers.js';
import type { FilteredBridge } from '../../../src/daemon/filtered-bridge.js';
import { kernelsFor } from '../../../src/daemon/kernels.js';
import { Firewall } from '../../../src/firewall/firewall.js';
import { IpsetBackend } from '../../../src/firewall/ipset-backend.js';
import { IptablesBackend } from '../../../src/firewall/iptables-backend.js';
import { routeRule } from '../../../src/firewall/rules.js';
import { Patterns } from '../../../src/policy/patterns.js';
import type { Policy } from '../../../src/policy/policies.js';
import { ConfigError } from '../../../src/util/errors.js';
import { fakeIpset } from '../../support/ipset.js';
import { fakeIptables } from '../../support/iptables.js';
import { recordingLogger } from '../../support/log.js';

const VIEW: FilteredBridge = {
  bridge: 'br0',
  4: { subnets: ['172.18.0.0/16'], dns: [{ address: '172.18.0.1', port: 53 }] },
  6: { subnets: ['fd00:18::/64'], dns: [{ address: 'fd00:18::1', port: 53 }] },
  ipv6Because: undefined,
};
const TCP = (port: number) => ({ protocol: 'tcp' as const, port });
const policy = (name: string, ports = [TCP(443)]): Policy => ({ name, patterns: Patterns.compileAllowingNone([]), ports, clients: [], origin: name === 'default' ? 'default' : 'file', audit: false });
const route = (client: string, target: string, bridge = 'br0') => `-A ON-HIS-NAME-CLIENTS ${routeRule(bridge, client, target)}`;

async function kernels(backend: 'iptables' | 'ipset', options: { v6?: boolean } = {}) {
  const v4 = fakeIptables();
  const v6 = options.v6 === false ? undefined : fakeIptables();
  const ipset = fakeIpset();
  const config = parseConfig(['--backend', backend, '--interface', 'br0', 'a.test.'], {});
  const { log } = recordingLogger();
  const k = await kernelsFor(config, VIEW, { runner: v4.runner, runner6: v6?.runner, ipset: () => ipset.runner, log }, new Closers());
  /** A policy's firewall of `family`, started, as PolicyFirewalls makes it: its chain (and set) exist from then on. */
  const open = async (p: Policy, family: 4 | 6 = 4) => {
    const firewall = new Firewall({ ...k.kernel(p, family), log });
    await firewall.start();
    firewall.stop();
    return firewall;
  };
  return { k, v4, v6: v6!, ipset, open };
}

const chains = (listing: readonly string[]) => listing.filter((l) => l.startsWith('-N ')).map((l) => l.slice(3));

describe('iptables kernels', () => {
  it('keeps the default policy in DOCKER-USER and gives every other policy a chain of its own, on its own ports', async () => {
    const { k } = await kernels('iptables');
    const byDefault = k.kernel(policy('default', [TCP(80)]), 4);
    expect('runner' in byDefault && byDefault.layout).toMatchObject({ bridge: 'br0', ports: [TCP(80)], family: 4, subnets: ['172.18.0.0/16'] });
    const ci = k.kernel(policy('ci', [TCP(22)]), 6);
    expect('backend' in ci && ci.backend).toBeInstanceOf(IptablesBackend);
    expect('backend' in ci && ci.backend.where).toBe('in OHN-P-ci');
    expect('backend' in ci && ci.backend.layout).toMatchObject({ ports: [TCP(22)], family: 6, subnets: ['fd00:18::/64'] });
    expect(k).toMatchObject({ backend: 'iptables', ipv6Always: false, families: [4, 6] });
  });

  it('has only IPv4 without ip6tables', async () => {
    expect((await kernels('iptables', { v6: false })).k.families).toEqual([4]);
  });

  it('writes each client to its policy\'s chain in ON-HIS-NAME-CLIENTS, the default policy as RETURN, each family in its own table', async () => {
    const { k, v4, v6, open } = await kernels('iptables');
    await open(policy('ci'), 4);
    await open(policy('ci'), 6);
    await open(policy('web'), 4);
    await k.usePolicies([policy('default'), policy('ci'), policy('web')]);
    await k.route(
      [
        { client: '172.18.0.2', policy: 'ci' },
        { client: 'fd00:18::2', policy: 'ci' },
        { client: '172.18.0.3', policy: 'default' },
        { client: '172.18.1.0/24', policy: 'web' },
      ],
      [4, 6],
    );
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([route('172.18.0.2', 'OHN-P-ci'), route('172.18.0.3', 'RETURN'), route('172.18.1.0/24', 'OHN-P-web')]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')[0]).toContain('-s 172.18.0.2/32 -i br0 ');
    expect(v6.rules('ON-HIS-NAME-CLIENTS')).toEqual([route('fd00:18::2', 'OHN-P-ci')]);
    expect(v6.rules('ON-HIS-NAME-CLIENTS')[0]).toContain('-s fd00:18::2/128 -i br0 ');
  });

  it('rewrites ON-HIS-NAME-CLIENTS whole when the routes change, and not at all when they do not', async () => {
    const { k, v4, open } = await kernels('iptables');
    await open(policy('ci'));
    await k.usePolicies([policy('default'), policy('ci')]);
    await k.route([{ client: '172.18.0.2', policy: 'ci' }, { client: '172.18.0.3', policy: 'ci' }], [4]);
    const restores = v4.scripts.length;
    await k.route([{ client: '172.18.0.2', policy: 'ci' }, { client: '172.18.0.3', policy: 'ci' }], [4]);
    expect(v4.scripts.length).toBe(restores);

    await k.route([{ client: '172.18.0.3', policy: 'ci' }], [4]);
    expect(v4.scripts.at(-1)).toBe(`*filter\n:ON-HIS-NAME-CLIENTS - [0:0]\n${route('172.18.0.3', 'OHN-P-ci')}\nCOMMIT\n`);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([route('172.18.0.3', 'OHN-P-ci')]);
    await k.route([], [4]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([]);
  });

  it('writes only the families asked for', async () => {
    const { k, v6, open } = await kernels('iptables');
    await open(policy('ci'));
    await k.usePolicies([policy('default'), policy('ci')]);
    await k.route([{ client: '172.18.0.2', policy: 'ci' }, { client: 'fd00:18::2', policy: 'ci' }], [4]);
    expect(v6.scripts).toEqual([]);
  });

  it('removes the chains of policies not in use once routed (a previous run\'s, or one gone from the file), keeping those in use and everything not ours', async () => {
    const { k, v4, open } = await kernels('iptables');
    for (const name of ['ci', 'old', 'gone']) await open(policy(name));
    await v4.runner.restore('*filter\n:OHN-Pextra - [0:0]\n:MY-CHAIN - [0:0]\nCOMMIT\n');
    await k.usePolicies([policy('default'), policy('ci')]);
    await k.route([{ client: '172.18.0.2', policy: 'ci' }], [4]);
    expect(chains(await v4.runner.list())).toEqual(['DOCKER-USER', 'MY-CHAIN', 'OHN-P-ci', 'OHN-Pextra', 'ON-HIS-NAME-CLIENTS', 'ON-HIS-NAME-RECORD']);
    expect(v4.scripts.at(-1)).toBe('*filter\n-F OHN-P-gone\n-F OHN-P-old\n-X OHN-P-gone\n-X OHN-P-old\nCOMMIT\n');
  });

  it('prunes only in the families routed: an IPv6 table not filtered is left as it is', async () => {
    const { k, v6, open } = await kernels('iptables');
    await open(policy('old'), 6);
    await k.usePolicies([policy('default')]);
    await k.route([], [4]);
    expect(chains(await v6.runner.list())).toContain('OHN-P-old');
    await k.route([], [4, 6]);
    expect(chains(await v6.runner.list())).not.toContain('OHN-P-old');
  });

  it('forgets a policy: its chain goes once the routes no longer name it', async () => {
    const { k, v4, open } = await kernels('iptables');
    await open(policy('ci'));
    await open(policy('web'));
    await k.usePolicies([policy('default'), policy('ci'), policy('web')]);
    await k.route([{ client: '172.18.0.2', policy: 'web' }], [4]);
    await k.route([], [4]); // the route leaves web first…
    expect(chains(await v4.runner.list())).toContain('OHN-P-web'); // …web is still in use
    await k.forget('web');
    expect(chains(await v4.runner.list())).not.toContain('OHN-P-web');
    expect(chains(await v4.runner.list())).toContain('OHN-P-ci');
  });

  it('does not prune before anything was routed', async () => {
    const { k, v4, open } = await kernels('iptables');
    await open(policy('old'));
    await k.usePolicies([policy('default')]);
    await k.forget('old');
    expect(chains(await v4.runner.list())).toContain('OHN-P-old');
  });

  it('follows a re-created network: the routes name the new bridge', async () => {
    const { k, v4, open } = await kernels('iptables');
    await open(policy('ci'));
    await k.usePolicies([policy('default'), policy('ci')]);
    k.follow({ ...VIEW, bridge: 'br1' });
    await k.route([{ client: '172.18.0.2', policy: 'ci' }], [4]);
    expect(v4.rules('ON-HIS-NAME-CLIENTS')).toEqual([route('172.18.0.2', 'OHN-P-ci', 'br1')]);
    expect('backend' in k.kernel(policy('web'), 4) && (k.kernel(policy('web'), 4) as { backend: IptablesBackend }).backend.layout.bridge).toBe('br1');
  });
});

describe('ipset kernels', () => {
  it('gives the default policy the family\'s set in DOCKER-USER, and every other a set and chain of its own', async () => {
    const { k } = await kernels('ipset');
    const byDefault = k.kernel(policy('default'), 4);
    const ci = k.kernel(policy('ci'), 6);
    expect('backend' in byDefault && byDefault.backend).toBeInstanceOf(IpsetBackend);
    expect('backend' in byDefault && byDefault.backend.where).toBe('in DOCKER-USER and ipset on-his-name-v4');
    expect('backend' in ci && ci.backend.where).toBe('in OHN-P-ci and ipset ohn-p-ci-v6');
  });

  it('destroys the sets of policies not in use once routed, after their chains, and keeps the rest', async () => {
    const { k, v4, ipset, open } = await kernels('ipset');
    await open(policy('default'));
    for (const name of ['ci', 'old']) await open(policy(name));
    ipset.sets.set('ohn-p-ci-v4-grow', { create: 'create ohn-p-ci-v4-grow hash:ip', members: new Map() });
    ipset.sets.set('someone-elses', { create: 'create someone-elses hash:ip', members: new Map() });
    await k.usePolicies([policy('default'), policy('ci')]);
    await k.route([{ client: '172.18.0.2', policy: 'ci' }], [4]);
    expect([...ipset.sets.keys()].sort()).toEqual(['ohn-blocked-v4', 'ohn-blocked-v6', 'ohn-p-ci-v4', 'ohn-p-ci-v4-grow', 'on-his-name-v4', 'someone-elses']);
    expect(chains(await v4.runner.list())).not.toContain('OHN-P-old');
  });

  it('refuses --backend ipset without the ipset command', async () => {
    const config = parseConfig(['--backend', 'ipset', '--interface', 'br0', 'a.test.'], {});
    await expect(kernelsFor(config, VIEW, { runner: fakeIptables().runner, log: recordingLogger().log }, new Closers())).rejects.toThrow(
      new ConfigError('--backend ipset needs the ipset command: apt-get install ipset'),
    );
  });
});
