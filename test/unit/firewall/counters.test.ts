import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ruleCounters, setCounters } from '../../../src/firewall/counters.js';
import { IptablesBackend } from '../../../src/firewall/iptables-backend.js';
import { IpsetBackend } from '../../../src/firewall/ipset-backend.js';
import { fakeIpset } from '../../support/ipset.js';
import { fakeIptables } from '../../support/iptables.js';
import { testLayout } from '../../support/layout.js';

/** Recorded by test/fixtures/capture-counters.sh (iptables 1.8.9, nf_tables) and capture-ipset.sh. */
const fixture = (name: string) => readFileSync(new URL(`../../fixtures/${name}`, import.meta.url), 'utf8');

describe('ruleCounters (iptables-save -c)', () => {
  it("sums each address's ports on our bridge, and reads nothing else", () => {
    expect(ruleCounters(fixture('iptables-save-counters.txt'), 'ohnbr0')).toEqual(
      new Map([
        ['198.51.100.13', { packets: 2, bytes: 120 }],
        ['198.51.100.10', { packets: 4, bytes: 240 }],
        ['198.51.100.11', { packets: 0, bytes: 0 }],
      ]),
    );
  });

  it('keeps bridges apart: our rule for another bridge counts only there', () => {
    expect(ruleCounters(fixture('iptables-save-counters.txt'), 'otherbr')).toEqual(new Map([['198.51.100.12', { packets: 5, bytes: 300 }]]));
  });

  it('reads ip6tables-save, /128 and all', () => {
    expect(ruleCounters(fixture('ip6tables-save-counters.txt'), 'ohnbr0')).toEqual(new Map([['2001:db8::10', { packets: 0, bytes: 0 }]]));
  });

  it('ignores lines without counters (iptables-save without -c) and garbage', () => {
    const plain = fixture('iptables-save-counters.txt').replace(/^\[\d+:\d+\] /gm, '');
    expect(ruleCounters(plain, 'ohnbr0').size).toBe(0);
    expect(ruleCounters('[x:y] -A DOCKER-USER\n[1:2]\n\n', 'ohnbr0').size).toBe(0);
  });
});

describe('setCounters (ipset list -o save)', () => {
  it("reads each element's counters, and no other set's", () => {
    const counters = setCounters(fixture('ipset-save.txt'), 'on-his-name-v4');
    expect(counters.get('198.51.100.13')).toEqual({ packets: 5, bytes: 300 });
    expect(counters.get('198.51.100.10')).toEqual({ packets: 0, bytes: 0 });
    expect([...counters.keys()].sort()).toEqual(['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.13', '198.51.100.14']);
    expect(counters.has('203.0.113.5')).toBe(false);
  });

  it('is empty for a set without counters or no set at all', () => {
    expect(setCounters('create on-his-name-v4 hash:ip family inet\nadd on-his-name-v4 198.51.100.1\n', 'on-his-name-v4').size).toBe(0);
    expect(setCounters('', 'on-his-name-v4').size).toBe(0);
  });
});

describe('backends read their counters from the kernel', () => {
  it('iptables: through the runner’s save', async () => {
    const kernel = fakeIptables();
    const backend = new IptablesBackend(kernel.runner, testLayout());
    await backend.sync();
    await backend.apply([{ address: '198.51.100.7', name: 'a.test.' }], []);
    kernel.count('198.51.100.7/32 -i br0 -p tcp -m tcp --dport 443', 3, 180);
    expect(await backend.counters()).toEqual(new Map([['198.51.100.7', { packets: 3, bytes: 180 }]]));
  });

  it('ipset: through ipset save, per element', async () => {
    const kernel = fakeIptables();
    const ipset = fakeIpset();
    const backend = new IpsetBackend({ iptables: kernel.runner, ipset: ipset.runner, layout: testLayout(), nowSeconds: () => 1_700_000_000 });
    await backend.sync();
    await backend.apply([{ address: '198.51.100.7', name: 'a.test.', expiresAt: 1_700_000_300 }], []);
    expect(await backend.counters()).toEqual(new Map([['198.51.100.7', { packets: 0, bytes: 0 }]]));
  });
});
