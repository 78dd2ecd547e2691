import { describe, expect, it } from 'vitest';
import { containersOnNetwork, inspectedContainer, listedContainer, type ContainerSummary, type DockerContainers } from '../../../src/docker/containers.js';

const NETWORK = { name: 'on-his-name', id: 'n'.repeat(64) };
const endpoint = (ip: string, ip6 = '', id = NETWORK.id) => ({ NetworkID: id, IPAddress: ip, GlobalIPv6Address: ip6 });

describe('listedContainer', () => {
  it('reads the name, the labels and the addresses on that network, not on the others', () => {
    const summary: ContainerSummary = {
      Id: 'c1',
      Names: ['/web'],
      Labels: { team: 'payments' },
      NetworkSettings: { Networks: { bridge: endpoint('172.17.0.2', '', 'b'.repeat(64)), 'on-his-name': endpoint('172.18.0.2', 'fd00::2') } },
    };
    expect(listedContainer(summary, NETWORK)).toEqual({ id: 'c1', name: 'web', labels: { team: 'payments' }, ipv4: '172.18.0.2', ipv6: 'fd00::2' });
  });

  it('takes the own name, not a link alias, wherever it stands in Names', () => {
    const summary: ContainerSummary = { Id: 'c1', Names: ['/proxy/db', '/db'], NetworkSettings: { Networks: { 'on-his-name': endpoint('172.18.0.4') } } };
    expect(listedContainer(summary, NETWORK)?.name).toBe('db');
  });

  it('leaves out the addresses it does not have, and reads null labels as none', () => {
    const summary: ContainerSummary = { Id: 'c1', Names: ['/v6only'], Labels: null, NetworkSettings: { Networks: { 'on-his-name': endpoint('', 'fd00::9') } } };
    expect(listedContainer(summary, NETWORK)).toEqual({ id: 'c1', name: 'v6only', labels: {}, ipv6: 'fd00::9' });
  });

  it('is undefined for a container that is not on the network (any more)', () => {
    expect(listedContainer({ Id: 'c1', Names: ['/x'], NetworkSettings: { Networks: { bridge: endpoint('172.17.0.2', '', 'b'.repeat(64)) } } }, NETWORK)).toBeUndefined();
    expect(listedContainer({ Id: 'c1', Names: ['/x'], NetworkSettings: { Networks: null } }, NETWORK)).toBeUndefined();
    expect(listedContainer({ Id: 'c1', Names: ['/x'] }, NETWORK)).toBeUndefined();
    // Same name, but another network (the old one, before a re-create).
    expect(listedContainer({ Id: 'c1', Names: ['/x'], NetworkSettings: { Networks: { 'on-his-name': endpoint('172.18.0.2', '', 'o'.repeat(64)) } } }, NETWORK)).toBeUndefined();
  });

  it('finds the endpoint by id when the key is not the name', () => {
    const summary: ContainerSummary = { Id: 'c1', Names: ['/x'], NetworkSettings: { Networks: { renamed: endpoint('172.18.0.7') } } };
    expect(listedContainer(summary, NETWORK)?.ipv4).toBe('172.18.0.7');
    expect(listedContainer(summary, { name: 'on-his-name' })).toBeUndefined();
  });
});

describe('inspectedContainer', () => {
  it('reads Name and Config.Labels', () => {
    const inspected = { Id: 'c1', Name: '/web', Config: { Labels: { a: 'b' } }, NetworkSettings: { Networks: { 'on-his-name': endpoint('172.18.0.2') } } };
    expect(inspectedContainer(inspected, NETWORK)).toEqual({ id: 'c1', name: 'web', labels: { a: 'b' }, ipv4: '172.18.0.2' });
    expect(inspectedContainer({ ...inspected, Config: { Labels: null } }, NETWORK)?.labels).toEqual({});
  });
});

describe('containersOnNetwork', () => {
  it('asks for the network by name and keeps only the containers attached to it', async () => {
    const asked: Array<Record<string, string[]>> = [];
    const docker: DockerContainers = {
      async listContainers({ filters }): Promise<ContainerSummary[]> {
        asked.push(filters);
        return [
          { Id: 'c1', Names: ['/on'], NetworkSettings: { Networks: { 'on-his-name': endpoint('172.18.0.2') } } },
          { Id: 'c2', Names: ['/left'], NetworkSettings: { Networks: {} } },
        ];
      },
      inspectContainer: () => Promise.reject(new Error('not used')),
    };
    expect(await containersOnNetwork(docker, NETWORK)).toEqual([{ id: 'c1', name: 'on', labels: {}, ipv4: '172.18.0.2' }]);
    expect(asked).toEqual([{ network: ['on-his-name'] }]);
  });
});
