import { describe, expect, it } from 'vitest';
import { resolveBridgeNetwork, type DockerNetworks } from '../../../src/docker/network.js';
import { ConfigError } from '../../../src/util/errors.js';

function fakeDocker(answer: unknown | (() => never)): DockerNetworks {
  return {
    getNetwork: () => ({
      inspect: async () => {
        if (typeof answer === 'function') (answer as () => never)();
        return answer as never;
      },
    }),
  };
}

const network = {
  Id: '3f0c1a2b4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a',
  Name: 'on-his-name',
  Driver: 'bridge',
  Options: {},
  IPAM: { Config: [{ Subnet: 'fd00::/64', Gateway: 'fd00::1' }, { Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }] },
};

describe('resolveBridgeNetwork', () => {
  it('names the bridge br- and the first 12 characters of the id, and finds the IPv4 gateway', async () => {
    expect(await resolveBridgeNetwork(fakeDocker(network), 'on-his-name')).toEqual({
      name: 'on-his-name',
      id: network.Id,
      bridge: 'br-3f0c1a2b4d5e',
      gateway: '172.18.0.1',
      subnet: '172.18.0.0/16',
      ipv6: false,
    });
  });

  it('refuses a bridge name that is not a Linux interface name (it would go into iptables-restore text)', async () => {
    for (const name of ['ohn0 -j ACCEPT', 'a-name-far-too-long', 'br0\n-A FORWARD']) {
      const named = { ...network, Options: { 'com.docker.network.bridge.name': name } };
      await expect(resolveBridgeNetwork(fakeDocker(named), 'on-his-name')).rejects.toThrow(new ConfigError(`Docker network "on-his-name" has an unusable bridge name "${name}"`));
    }
    const fine = { ...network, Options: { 'com.docker.network.bridge.name': 'ohn_0.a-b' } };
    expect((await resolveBridgeNetwork(fakeDocker(fine), 'on-his-name')).bridge).toBe('ohn_0.a-b');
  });

  it('reports IPv6 and its subnet when the network was created with --ipv6', async () => {
    expect(await resolveBridgeNetwork(fakeDocker({ ...network, EnableIPv6: true }), 'on-his-name')).toMatchObject({
      ipv6: true,
      subnet6: 'fd00::/64',
      subnet: '172.18.0.0/16',
    });
    const noSubnet = { ...network, EnableIPv6: true, IPAM: { Config: [{ Subnet: '172.18.0.0/16' }] } };
    const reported = await resolveBridgeNetwork(fakeDocker(noSubnet), 'on-his-name');
    expect(reported.ipv6).toBe(true);
    expect(reported.subnet6).toBeUndefined();
  });

  it('uses com.docker.network.bridge.name when the network sets it', async () => {
    const named = { ...network, Options: { 'com.docker.network.bridge.name': 'ohn0' } };
    expect((await resolveBridgeNetwork(fakeDocker(named), 'on-his-name')).bridge).toBe('ohn0');
  });

  it('tells how to create a missing network', async () => {
    const missing = fakeDocker(() => {
      throw Object.assign(new Error('(HTTP code 404) no such network'), { statusCode: 404 });
    });
    await expect(resolveBridgeNetwork(missing, 'on-his-name')).rejects.toThrow(
      new ConfigError('Docker network "on-his-name" not found: create it with "docker network create on-his-name"'),
    );
  });

  it('tells what to do when Docker cannot be reached', async () => {
    const down = fakeDocker(() => {
      throw Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT', address: '/var/run/docker.sock' });
    });
    await expect(resolveBridgeNetwork(down, 'on-his-name')).rejects.toThrow(/cannot reach Docker at \/var\/run\/docker.sock.*--interface/);
  });

  it('refuses a network that is not a bridge', async () => {
    await expect(resolveBridgeNetwork(fakeDocker({ ...network, Driver: 'overlay' }), 'on-his-name')).rejects.toThrow(/overlay driver/);
  });
});
