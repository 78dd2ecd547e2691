import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MAX_TIMEOUT_SECONDS,
  adoptedEntries,
  createLine,
  decodeComment,
  elementTimeout,
  encodeComment,
  incompatibility,
  parseSave,
  renderApply,
} from '../../../src/firewall/ipset.js';

/** Recorded by test/fixtures/capture-ipset.sh from ipset 7.17 in a namespace. */
const saved = readFileSync(new URL('../../fixtures/ipset-save.txt', import.meta.url), 'utf8');
const NOW = 1_700_000_000;

describe('renderApply', () => {
  it('deletes, then adds with the remaining lifetime as timeout and the name as comment', () => {
    const script = renderApply(
      'on-his-name-v4',
      [
        { address: '198.51.100.7', name: 'example.com.', expiresAt: NOW + 300 },
        { address: '198.51.100.8', expiresAt: NOW + 0.2 },
        { address: '198.51.100.9', name: 'forever.test.' },
      ],
      [{ address: '198.51.100.1' }],
      NOW,
    );
    expect(script).toBe(
      [
        'del on-his-name-v4 198.51.100.1',
        'add on-his-name-v4 198.51.100.7 timeout 300 comment "example.com."',
        'add on-his-name-v4 198.51.100.8 timeout 1',
        'add on-his-name-v4 198.51.100.9 timeout 0 comment "forever.test."',
        '',
      ].join('\n'),
    );
  });

  it('renders nothing for an empty batch', () => {
    expect(renderApply('s', [], [], NOW)).toBe('');
  });

  it('refuses anything but a bare IP literal, so nothing can ride along on the line', () => {
    expect(() => renderApply('s', [{ address: '198.51.100.7\nflush s' }], [], NOW)).toThrow(/not an IP address/);
    expect(() => renderApply('s', [], [{ address: 'fe80::1%eth0 x' }], NOW)).toThrow(/not an IP address/);
    expect(() => renderApply('s', [], [{ address: 'fe80::1%eth0' }], NOW)).toThrow(/not an IP address/);
  });

  it('writes IPv6 elements the same way, for the inet6 set', () => {
    expect(renderApply('on-his-name-v6', [{ address: '2001:db8::7', name: 'six.test.', expiresAt: NOW + 60 }], [{ address: '2001:db8::1' }], NOW)).toBe(
      'del on-his-name-v6 2001:db8::1\nadd on-his-name-v6 2001:db8::7 timeout 60 comment "six.test."\n',
    );
  });

  it('creates the set with timeouts, counters and comments, in the family asked for', () => {
    expect(createLine('on-his-name-v4', 1000)).toBe(
      'create on-his-name-v4 hash:ip family inet counters timeout 0 comment maxelem 1000',
    );
    expect(createLine('on-his-name-v6', 1000, 6)).toBe(
      'create on-his-name-v6 hash:ip family inet6 counters timeout 0 comment maxelem 1000',
    );
  });
});

describe('elementTimeout', () => {
  it.each([
    [undefined, 0],
    [NOW + 300, 300],
    [NOW + 299.2, 300],
    // Past expiries still get a second: 0 would mean "never expires".
    [NOW, 1],
    [NOW - 50, 1],
    [NOW + 10 ** 9, MAX_TIMEOUT_SECONDS],
  ])('expiry %s → timeout %s', (expiresAt, timeout) => {
    expect(elementTimeout(expiresAt, NOW)).toBe(timeout);
  });
});

describe('comments', () => {
  it('keeps plain DNS names as they are', () => {
    expect(encodeComment('api-eu.example.com.')).toBe('api-eu.example.com.');
    expect(encodeComment('_srv.*.test.')).toBe('_srv.*.test.');
    expect(encodeComment(undefined)).toBeUndefined();
  });

  it('escapes quotes, spaces, backslashes and non-ASCII as \\DDD', () => {
    expect(encodeComment('a b"c.example.com.')).toBe('a\\032b\\034c.example.com.');
    expect(encodeComment('café.test.')).toBe('caf\\195\\169.test.');
    expect(encodeComment('back\\slash.')).toBe('back\\092slash.');
  });

  it('leaves out a name too long for the kernel (255 characters) once escaped', () => {
    expect(encodeComment(`${'"'.repeat(62)}.test.`)).toHaveLength(62 * 4 + 6);
    expect(encodeComment(`${'"'.repeat(63)}.test.`)).toBeUndefined();
    expect(encodeComment('a'.repeat(255))).toHaveLength(255);
    expect(encodeComment('a'.repeat(256))).toBeUndefined();
  });

  it('round-trips any name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (name) => {
        const comment = encodeComment(name);
        if (comment === undefined) return name === '';
        expect(comment).toMatch(/^[A-Za-z0-9_.*\\-]*$/);
        expect(decodeComment(comment)).toBe(Buffer.from(name, 'utf8').toString('utf8'));
        return true;
      }),
    );
  });
});

describe('parseSave', () => {
  it('reads the set header and every element of a real `ipset list -o save`', () => {
    const set = parseSave(saved, 'on-his-name-v4');
    expect(set?.header).toEqual({
      name: 'on-his-name-v4',
      type: 'hash:ip',
      family: 'inet',
      maxelem: 262144,
      timeout: 0,
      counters: true,
      comment: true,
    });
    expect(set?.elements).toEqual([
      { address: '198.51.100.12', timeout: 30, packets: 0, bytes: 0 },
      { address: '198.51.100.10', timeout: 299, packets: 0, bytes: 0, comment: 'example.com.' },
      { address: '198.51.100.13', timeout: 100, packets: 5, bytes: 300, comment: 'someone typed this, with spaces' },
      { address: '198.51.100.14', timeout: 3600, packets: 0, bytes: 0, comment: 'café.test.' },
      { address: '198.51.100.11', timeout: 0, packets: 0, bytes: 0, comment: 'a b"c.example.com.' },
    ]);
  });

  it("reads someone else's set only when asked for it, and knows it is not ours to use", () => {
    const other = parseSave(saved, 'someone-else');
    expect(other?.elements).toEqual([]); // hash:ip,port elements are not addresses we would adopt
    expect(incompatibility(other!.header)).toBe('needs type hash:ip (it is hash:ip,port), timeout support, counters, comments');
    expect(incompatibility(parseSave(saved, 'on-his-name-v4')!.header)).toBeUndefined();
  });

  it('finds nothing when the set is not in the listing', () => {
    expect(parseSave(saved, 'on-his-name-v6')).toBeUndefined();
    expect(parseSave('', 'on-his-name-v4')).toBeUndefined();
  });

  it('reads back what renderApply wrote, as ipset would list it', () => {
    const header = 'create s hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 counters comment bucketsize 12 initval 0x1';
    const added = renderApply('s', [{ address: '198.51.100.7', name: 'x y."z', expiresAt: NOW + 60 }], [], NOW)
      .replace('timeout 60', 'timeout 60 packets 3 bytes 180');
    expect(parseSave(`${header}\n${added}`, 's')?.elements).toEqual([
      { address: '198.51.100.7', timeout: 60, packets: 3, bytes: 180, comment: 'x y."z' },
    ]);
  });
});

describe('adoptedEntries', () => {
  it('turns remaining timeouts into expiries; timeout 0 never expires', () => {
    const set = parseSave(saved, 'on-his-name-v4')!;
    expect(adoptedEntries(set.elements, NOW)).toEqual([
      { address: '198.51.100.12', expiresAt: NOW + 30 },
      { address: '198.51.100.10', name: 'example.com.', expiresAt: NOW + 299 },
      { address: '198.51.100.13', name: 'someone typed this, with spaces', expiresAt: NOW + 100 },
      { address: '198.51.100.14', name: 'café.test.', expiresAt: NOW + 3600 },
      { address: '198.51.100.11', name: 'a b"c.example.com.' },
    ]);
  });
});

describe('incompatibility', () => {
  it('names every missing feature of a set made by hand', () => {
    expect(incompatibility({ name: 's', type: 'hash:ip', family: 'inet6', counters: true, comment: false })).toBe(
      'needs family inet (it is inet6), timeout support, comments',
    );
  });

  it('wants inet6 for the IPv6 set, and reads its elements', () => {
    const v6 = parseSave(
      'create on-his-name-v6 hash:ip family inet6 hashsize 1024 maxelem 262144 timeout 0 counters comment bucketsize 12 initval 0x1\n' +
        'add on-his-name-v6 2001:db8::7 timeout 59 packets 3 bytes 180 comment "six.test."\n',
      'on-his-name-v6',
    )!;
    expect(incompatibility(v6.header, 6)).toBeUndefined();
    expect(incompatibility(v6.header, 4)).toBe('needs family inet (it is inet6)');
    expect(incompatibility({ ...v6.header, family: 'inet' }, 6)).toBe('needs family inet6 (it is inet)');
    expect(v6.elements).toEqual([{ address: '2001:db8::7', timeout: 59, packets: 3, bytes: 180, comment: 'six.test.' }]);
  });
});
