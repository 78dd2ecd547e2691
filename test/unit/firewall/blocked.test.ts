import { describe, expect, it } from 'vitest';
import { BLOCKED_HASH_SIZE, BLOCKED_TIMEOUT_SECONDS, blockedCreateLine, parseBlockedSave } from '../../../src/firewall/blocked.js';
import { parseBlockedSet } from '../../../src/firewall/nft/blocked.js';

describe('the ipset record of blocked attempts', () => {
  it('is a hash:ip,port,ip per family, with a timeout, counters and a bound', () => {
    expect(blockedCreateLine(4)).toBe(`create ohn-blocked-v4 hash:ip,port,ip family inet hashsize ${BLOCKED_HASH_SIZE} timeout ${BLOCKED_TIMEOUT_SECONDS} counters maxelem 16384`);
    expect(blockedCreateLine(6)).toMatch(/^create ohn-blocked-v6 hash:ip,port,ip family inet6 /);
  });

  it('reads as client, protocol, port, destination, packets and how long ago the last one was', () => {
    const save = [
      'create ohn-blocked-v4 hash:ip,port,ip family inet hashsize 1024 maxelem 16384 timeout 600 counters bucketsize 12 initval 0x6bae07d4',
      'add ohn-blocked-v4 192.0.2.10,tcp:443,203.0.113.10 timeout 597 packets 3 bytes 180',
      'add ohn-blocked-v4 192.0.2.11,udp:53,198.51.100.9 timeout 600 packets 1 bytes 60',
      'add ohn-blocked-v4 192.0.2.11,icmp:8/0,198.51.100.9 timeout 600 packets 1 bytes 84',
    ].join('\n');
    expect(parseBlockedSave(save)).toEqual([
      { client: '192.0.2.10', protocol: 'tcp', port: 443, address: '203.0.113.10', packets: 3, idleSeconds: 3 },
      { client: '192.0.2.11', protocol: 'udp', port: 53, address: '198.51.100.9', packets: 1, idleSeconds: 0 },
    ]);
    expect(parseBlockedSave('add ohn-blocked-v6 2001:db8::5,tcp:443,2001:db8:1::10 timeout 590 packets 2 bytes 160')).toEqual([
      { client: '2001:db8::5', protocol: 'tcp', port: 443, address: '2001:db8:1::10', packets: 2, idleSeconds: 10 },
    ]);
  });
});

describe('the nftables record of blocked attempts', () => {
  it('reads each element of nft -j list set as client, destination, protocol, port, its counter and expiry', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        {
          set: {
            family: 'inet',
            name: 'blocked4',
            table: 'on-his-name',
            type: ['ipv4_addr', 'ipv4_addr', 'inet_proto', 'inet_service'],
            elem: [
              { elem: { val: { concat: ['192.0.2.10', '203.0.113.10', 'tcp', 443] }, expires: 595, counter: { packets: 4, bytes: 240 } } },
              { elem: { val: { concat: ['192.0.2.10', '203.0.113.10', 'udp', 443] }, expires: 600, counter: { packets: 1, bytes: 60 } } },
              { elem: { val: { concat: ['192.0.2.10', '203.0.113.10', 'sctp', 9] }, expires: 600 } },
              { elem: { val: '192.0.2.1' } },
            ],
          },
        },
      ],
    });
    expect(parseBlockedSet(json)).toEqual([
      { client: '192.0.2.10', address: '203.0.113.10', protocol: 'tcp', port: 443, packets: 4, idleSeconds: 5 },
      { client: '192.0.2.10', address: '203.0.113.10', protocol: 'udp', port: 443, packets: 1, idleSeconds: 0 },
    ]);
  });

  it('reads nothing from an empty set or bad text', () => {
    expect(parseBlockedSet(JSON.stringify({ nftables: [{ set: { name: 'blocked4' } }] }))).toEqual([]);
    expect(parseBlockedSet('not json')).toEqual([]);
  });
});
