import { describe, expect, it } from 'vitest';
import { chooseBackend } from '../../../src/firewall/choose.js';

const dockerUser = ['-P FORWARD ACCEPT', '-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', '-A DOCKER-USER -j RETURN'];

describe('chooseBackend', () => {
  it('obeys an explicit choice', () => {
    expect(chooseBackend('ipset', {})).toEqual({ backend: 'ipset', reason: '--backend ipset' });
    expect(chooseBackend('iptables', { iptables: [] })).toEqual({ backend: 'iptables', reason: '--backend iptables' });
  });

  it.each([
    ['Docker says it uses nftables', { dockerFirewall: 'nftables', iptables: dockerUser }, /Docker uses its nftables firewall backend/],
    ['iptables cannot be read', {}, /iptables cannot be read/],
    ['there is no DOCKER-USER', { iptables: ['-P FORWARD ACCEPT'] }, /there is no DOCKER-USER chain/],
    ['FORWARD does not jump to it', { iptables: dockerUser.filter((l) => !l.startsWith('-A FORWARD')) }, /FORWARD does not jump to it/],
    ['IPv6 must be filtered and ip6tables has no DOCKER-USER', { iptables: dockerUser, ip6tables: ['-P FORWARD ACCEPT'], ipv6Because: 'the Docker network has IPv6' }, /IPv6 must be filtered \(the Docker network has IPv6\) and ip6tables has no DOCKER-USER/],
  ])('picks nftables when %s', (_, facts, reason) => {
    const choice = chooseBackend('auto', facts);
    expect(choice.backend).toBe('nftables');
    expect(choice.reason).toMatch(reason);
  });

  it('keeps the DOCKER-USER layout where FORWARD jumps to DOCKER-USER (and ip6tables too when IPv6 must be filtered)', () => {
    expect(chooseBackend('auto', { iptables: dockerUser, dockerFirewall: 'iptables' })).toEqual({ backend: 'iptables', reason: 'DOCKER-USER exists and FORWARD jumps to it' });
    expect(chooseBackend('auto', { iptables: dockerUser, ip6tables: dockerUser, ipv6Because: 'x' }).backend).toBe('iptables');
  });
});
