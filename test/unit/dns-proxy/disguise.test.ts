import { describe, expect, it } from 'vitest';
import { answersDisguised, disguise, undisguise } from '../../../src/dns-proxy/disguise.js';
import { checkQuery, type Query } from '../../../src/dns-proxy/message.js';
import { answerTo, query } from '../../support/dns.js';
import dnsPacket from 'dns-packet';

const parsed = (bytes: Buffer): Query => {
  const check = checkQuery(bytes);
  if (!check.ok) throw new Error(check.why);
  return check.query;
};
/** Random bytes from a fixed list, so that a test knows what was drawn. */
const drawn = (...values: number[]) => (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => values[i % values.length]!));

describe('disguise', () => {
  const bytes = query('Allowed.test', { id: 1234, edns: true });
  const q = parsed(bytes);

  it('sends a fresh ID and flips the letters the random bits say, nothing else', () => {
    const sent = disguise(bytes, q, { mixCase: true, random: drawn(0xff) });
    expect(sent.id).toBe(0xffff);
    expect(sent.bytes.readUInt16BE(0)).toBe(0xffff);
    expect(dnsPacket.decode(sent.bytes).questions![0]!.name).toBe('aLLOWED.TEST');
    expect(sent.bytes.subarray(2)).not.toEqual(bytes.subarray(2)); // the case changed…
    expect(sent.bytes.subarray(12 + q.question.length)).toEqual(bytes.subarray(12 + q.question.length)); // …and nothing past the question
    const plain = disguise(bytes, q, { mixCase: false, random: drawn(0x12, 0x34) });
    expect(plain.bytes.subarray(2)).toEqual(bytes.subarray(2));
    expect(plain.id).toBe(0x1234);
  });

  it('accepts only a response with the ID and the question exactly as sent, and gives the client its own back', () => {
    const sent = disguise(bytes, q, { mixCase: true, random: drawn(0x5a) });
    const asSent = dnsPacket.decode(sent.bytes);
    const reply = (id: number, name: string) => dnsPacket.encode(answerTo({ ...asSent, id, questions: [{ ...asSent.questions![0]!, name }] }, [{ type: 'A', name, ttl: 60, data: '198.51.100.10' }]));
    const real = reply(sent.id, asSent.questions![0]!.name);
    expect(answersDisguised(real, sent)).toBe(true);
    expect(answersDisguised(reply(1234, asSent.questions![0]!.name), sent)).toBe(false); // the client's ID: what a forger knows
    expect(answersDisguised(reply(sent.id, 'allowed.test'), sent)).toBe(false); // the right ID, the letters in another case
    expect(answersDisguised(reply(sent.id, 'other.test'), sent)).toBe(false);
    expect(answersDisguised(sent.bytes, sent)).toBe(false); // a query, not a response
    const back = dnsPacket.decode(undisguise(real, q));
    expect(back.id).toBe(1234);
    expect(back.questions![0]!.name).toBe('Allowed.test');
    expect(back.answers).toHaveLength(1);
  });
});
