/**
 * Real producer bytes: test/fixtures/unbound.fstrm was recorded from unbound 1.17 by
 * fstrm_capture (test/fixtures/capture.sh); unbound.yaml is `dnstap -y` of the same file.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { extractAnswer } from '../../src/dns/answer.js';
import { decodeDnstap } from '../../src/dnstap/decode.js';
import { MessageType } from '../../src/dnstap/schema.js';
import { FrameDecoder, type Frame } from '../../src/framestream/decoder.js';
import { INITIAL_HANDSHAKE, acceptsData, stepHandshake } from '../../src/framestream/handshake.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../src/framestream/limits.js';
import { byteByByte, randomSplits, seededRandom } from '../support/framestream.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
const capture = fixture('unbound.fstrm');
/** What `dnstap -y` (golang-dnstap, an independent decoder) printed for each capture. */
const expectedBy = (name: string): Array<{ qname: string; rcode: string; a: string[]; aaaa: string[]; queryAddress: string }> =>
  JSON.parse(fixture(name).toString('utf8'));

function decode(chunks: Buffer[]): Frame[] {
  const decoder = new FrameDecoder();
  return chunks.flatMap((c) => decoder.push(c));
}

function clientResponses(frames: Frame[]) {
  return frames
    .filter((f): f is Extract<Frame, { kind: 'data' }> => f.kind === 'data')
    .map((f) => decodeDnstap(f.payload))
    .filter((m) => m.type === MessageType.CLIENT_RESPONSE)
    .map((m) => {
      const answer = extractAnswer(m.responseMessage!);
      return { client: m.queryAddress, name: answer.name, rcode: answer.rcode, a: answer.ipv4.map((r) => r.address), aaaa: answer.ipv6.map((r) => r.address) };
    });
}

const expected = [
  { client: '192.0.2.1', name: 'allowed.test.', rcode: 'NOERROR', a: ['198.51.100.10'], aaaa: [] },
  { client: '192.0.2.1', name: 'multi.test.', rcode: 'NOERROR', a: ['198.51.100.10', '198.51.100.11', '198.51.100.12'], aaaa: [] },
  { client: '192.0.2.1', name: 'alias.test.', rcode: 'NOERROR', a: ['198.51.100.13'], aaaa: [] },
  { client: '192.0.2.1', name: 'v6.test.', rcode: 'NOERROR', a: ['198.51.100.14'], aaaa: [] },
  { client: '192.0.2.1', name: 'v6.test.', rcode: 'NOERROR', a: [], aaaa: ['2001:db8::10'] },
  { client: '192.0.2.1', name: 'denied.test.', rcode: 'NOERROR', a: ['203.0.113.10'], aaaa: [] },
  { client: '192.0.2.1', name: 'nx.test.', rcode: 'NXDOMAIN', a: [], aaaa: [] },
];

describe('a capture recorded from unbound', () => {
  it('is a unidirectional Frame Streams file: START with the dnstap content type, 14 messages, STOP', () => {
    const frames = decode([capture]);
    expect(frames[0]).toEqual({ kind: 'control', control: { type: ControlType.START, contentTypes: [DNSTAP_CONTENT_TYPE] } });
    expect(frames.at(-1)).toEqual({ kind: 'control', control: { type: ControlType.STOP, contentTypes: [] } });
    expect(frames.filter((f) => f.kind === 'data')).toHaveLength(14);
  });

  it('decodes to the answers unbound gave, whole, byte by byte and in random chunks', () => {
    expect(clientResponses(decode([capture]))).toEqual(expected);
    expect(clientResponses(decode(byteByByte(capture)))).toEqual(expected);
    for (const seed of [1, 2, 3]) expect(clientResponses(decode(randomSplits(capture, seededRandom(seed), 97)))).toEqual(expected);
  });

  it('carries the identity and version unbound was told to send', () => {
    const first = decode([capture]).find((f) => f.kind === 'data') as Extract<Frame, { kind: 'data' }>;
    expect(decodeDnstap(first.payload)).toMatchObject({ identity: 'fixture', type: MessageType.CLIENT_QUERY });
  });
});

describe('the recordings agree with golang-dnstap', () => {
  const asYaml = (r: ReturnType<typeof clientResponses>[number]) => ({ qname: r.name, rcode: r.rcode, a: r.a, aaaa: r.aaaa, queryAddress: r.client });
  const withoutPort = ({ qname, rcode, a, aaaa, queryAddress }: ReturnType<typeof expectedBy>[number]) => ({ qname, rcode, a, aaaa, queryAddress });

  it('decodes the file capture to what dnstap -y printed', () => {
    expect(clientResponses(decode([capture])).map(asYaml)).toEqual(expectedBy('unbound.expected.json').map(withoutPort));
  });

  it('completes the bidirectional handshake unbound sent on a live socket and decodes its answers', () => {
    const frames = decode(randomSplits(fixture('unbound-bidi.bin'), seededRandom(7), 61));
    let state = INITIAL_HANDSHAKE;
    const replies: number[] = [];
    const data: Frame[] = [];
    for (const frame of frames) {
      if (frame.kind === 'data') {
        expect(acceptsData(state)).toBe(true);
        data.push(frame);
        continue;
      }
      if (frame.kind !== 'control') throw new Error(`unexpected ${frame.kind} frame in the recording`);
      const step = stepHandshake(state, frame.control);
      state = step.state;
      if (step.reply) replies.push(step.reply.readUInt32BE(8));
    }
    expect(state).toEqual({ phase: 'stopped', bidirectional: true });
    expect(replies).toEqual([ControlType.ACCEPT, ControlType.FINISH]);
    expect(clientResponses(data).map(asYaml)).toEqual(expectedBy('unbound-bidi.expected.json').map(withoutPort));
  });
});
