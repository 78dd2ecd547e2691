/**
 * The Docker lab runs the repository's coredns/Corefile when CoreDNS is installed; the
 * rewrite to the lab's addresses must keep working as the Corefile evolves.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { parseConnectEndpoint } from '../../src/framestream/endpoint.js';
import { COREFILE, COREFILE_LISTEN, hasDnstapListen, labCorefile } from '../lab/coredns.js';

const lab = { listen: '172.31.0.1', dnstapSocket: '/tmp/ohn-lab/dnstap.sock', upstream: '127.0.0.1:5300' };

describe('coredns/Corefile in the lab', () => {
  it('binds the gateway, forwards to the lab upstream and sends full dnstap to the lab socket', () => {
    const text = labCorefile(readFileSync(COREFILE, 'utf8'), lab);
    expect(text).toMatch(/^\s*bind 172\.31\.0\.1$/m);
    expect(text).toMatch(/^\s*forward \. 127\.0\.0\.1:5300$/m);
    expect(text).toMatch(/^\s*dnstap unix:\/\/\/tmp\/ohn-lab\/dnstap\.sock full$/m);
    expect(text).not.toContain('/run/on-his-name/dnstap.sock');
  });

  it('refuses a Corefile that lost one of the lines it rewrites', () => {
    expect(() => labCorefile('.:53 {\n    bind 172.18.0.1\n    forward . /etc/resolv.conf\n}\n', lab)).toThrow(/dnstap/);
  });
});

describe('coredns/Corefile.listen and Corefile.listen-tcp (CoreDNS dnstap listen mode)', () => {
  it.each(['Corefile.listen', 'Corefile.listen-tcp'])('%s: "dnstap listen … full" where its own on-his-name --connect line dials', (file) => {
    const text = readFileSync(new URL(`../../coredns/${file}`, import.meta.url), 'utf8');
    const listenLine = /^\s*dnstap listen (\S+) full$/m.exec(text);
    const command = /on-his-name --connect (\S+)/.exec(text);
    expect(listenLine, 'a "dnstap listen ADDRESS full" line').not.toBeNull();
    expect(command, 'an on-his-name --connect example').not.toBeNull();
    expect(parseConfig(['--connect', command![1]!, 'example.com.'], {}).connect).toEqual([parseConnectEndpoint(listenLine![1]!, 'Corefile')]);
  });
});

describe('CoreDNS in listen mode in the lab', () => {
  it('points the dnstap listen line of coredns/Corefile.listen at the lab socket', () => {
    const text = labCorefile(readFileSync(COREFILE_LISTEN, 'utf8'), lab);
    expect(text).toMatch(/^\s*dnstap listen unix:\/\/\/tmp\/ohn-lab\/dnstap\.sock full$/m);
    expect(text).toMatch(/^\s*bind 172\.31\.0\.1$/m);
  });

  it('knows which CoreDNS versions have dnstap listen', () => {
    for (const v of ['CoreDNS-1.14.4', 'CoreDNS-1.14.10\nlinux/amd64, go1.24', 'CoreDNS-1.15.0', 'CoreDNS-2.0.0']) expect(hasDnstapListen(v), v).toBe(true);
    for (const v of ['CoreDNS-1.14.3', 'CoreDNS-1.11.1', 'CoreDNS-0.99.99', 'coredns: command not found']) expect(hasDnstapListen(v), v).toBe(false);
  });
});
