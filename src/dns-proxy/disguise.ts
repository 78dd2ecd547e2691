/**
 * What goes upstream is not what the client sent. The client chose its query's ID and
 * question, so forwarding them as they are leaves a forger who can send datagrams from
 * the upstream's address (any IPv6 upstream, an IPv4 one without strict rp_filter, one on
 * the bridge) only the ephemeral port to guess, and a forged answer opens whatever it
 * names. As unbound and dnsmasq do, each query goes upstream with a fresh random ID and,
 * over UDP, the question name's letters in random case (the "0x20" bits); a reply counts
 * only if it echoes both exactly, from the socket the query left by. The client gets the
 * reply back with its own ID and question.
 *
 * Pure but for the random bytes, which a test can pass in. Bytes in, bytes out.
 */
import { randomBytes } from 'node:crypto';
import { HEADER_BYTES, type Query } from './message.js';

/** The query as sent upstream: the bytes, and what a reply must carry to count. */
export interface Disguised {
  bytes: Buffer;
  id: number;
  /** The question section as sent, letter case included. */
  question: Buffer;
}

export type RandomBytes = (size: number) => Buffer;

const QR = 0x8000;

/** `bytes` (the client's query, read as `query`) with a fresh ID and, with `mixCase`, 0x20 case. */
export function disguise(bytes: Buffer, query: Query, options: { mixCase: boolean; random?: RandomBytes }): Disguised {
  const random = options.random ?? randomBytes;
  const out = Buffer.from(bytes);
  const id = random(2).readUInt16BE(0);
  out.writeUInt16BE(id, 0);
  if (options.mixCase) mixCase(out, HEADER_BYTES, query.question.length - 4, random);
  return { bytes: out, id, question: Buffer.from(out.subarray(HEADER_BYTES, HEADER_BYTES + query.question.length)) };
}

/** Does `reply` answer the disguised query: a response with its ID and its question, byte for byte? */
export function answersDisguised(reply: Buffer, sent: Disguised): boolean {
  if (reply.length < HEADER_BYTES + sent.question.length) return false;
  if (reply.readUInt16BE(0) !== sent.id || !(reply.readUInt16BE(2) & QR) || reply.readUInt16BE(4) !== 1) return false;
  return reply.subarray(HEADER_BYTES, HEADER_BYTES + sent.question.length).equals(sent.question);
}

/** The upstream's reply as the client must see it: its own ID and question back in place. */
export function undisguise(reply: Buffer, query: Query): Buffer {
  const out = Buffer.from(reply);
  out.writeUInt16BE(query.id, 0);
  query.question.copy(out, HEADER_BYTES);
  return out;
}

/**
 * Flip the case of each letter of the name's labels (`length` bytes from `at`, length
 * octets left alone) by one random bit each. A name with few letters gains few bits; the ID
 * still carries sixteen.
 */
function mixCase(buf: Buffer, at: number, length: number, random: RandomBytes): void {
  const bits = random(Math.ceil(length / 8) || 1);
  let label = 0;
  for (let i = 0; i < length; i++) {
    const offset = at + i;
    if (label === 0) {
      label = buf[offset]!; // a length octet: the next `label` bytes are the label's
      if (label & 0xc0) return; // a compression pointer ends the name
      continue;
    }
    label--;
    const c = buf[offset]!;
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (letter && (bits[i >> 3]! >> (i & 7)) & 1) buf[offset] = c ^ 0x20;
  }
}
