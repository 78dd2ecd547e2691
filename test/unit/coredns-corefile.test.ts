/**
 * The Docker lab runs the repository's coredns/Corefile when CoreDNS is installed; the
 * rewrite to the lab's addresses must keep working as the Corefile evolves.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COREFILE, labCorefile } from '../lab/coredns.js';

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
