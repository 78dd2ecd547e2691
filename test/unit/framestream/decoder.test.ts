import { describe, expect, it } from 'vitest';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { FrameDecoder, type Frame } from '../../../src/framestream/decoder.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { ProtocolError } from '../../../src/util/errors.js';
import { bidirectionalStream, byteByByte, randomSplits, seededRandom } from '../../support/framestream.js';

const payloads = [Buffer.from('first'), Buffer.alloc(3000, 7), Buffer.from([0, 0, 0, 0]), Buffer.from('last')];
const stream = bidirectionalStream(payloads);

function decodeAll(chunks: Buffer[], decoder = new FrameDecoder()): Frame[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function summary(frames: Frame[]) {
  return frames.map((f) =>
    f.kind === 'data' ? { data: Buffer.from(f.payload).toString('hex') } : f.kind === 'control' ? f.control : f,
  );
}

describe('FrameDecoder', () => {
  const expected = [
    { type: ControlType.READY, contentTypes: [DNSTAP_CONTENT_TYPE] },
    { type: ControlType.START, contentTypes: [DNSTAP_CONTENT_TYPE] },
    ...payloads.map((p) => ({ data: p.toString('hex') })),
    { type: ControlType.STOP, contentTypes: [] },
  ];

  it('decodes a whole stream', () => {
    expect(summary(decodeAll([stream]))).toEqual(expected);
  });

  it('decodes the same stream fed one byte at a time', () => {
    expect(summary(decodeAll(byteByByte(stream)))).toEqual(expected);
  });

  it.each([1, 2, 3, 42, 1337])('decodes the same stream in random chunks (seed %i)', (seed) => {
    expect(summary(decodeAll(randomSplits(stream, seededRandom(seed), 700)))).toEqual(expected);
  });

  it('copies a partial frame it carries over, so a reused input buffer cannot corrupt it', () => {
    const decoder = new FrameDecoder();
    const bytes = encodeData(Buffer.from('payload'));
    const first = Buffer.from(bytes.subarray(0, 7));
    expect(decoder.push(first)).toEqual([]);
    first.fill(0xff);
    expect(summary(decoder.push(Buffer.from(bytes.subarray(7))))).toEqual([{ data: Buffer.from('payload').toString('hex') }]);
  });

  it('skips an oversized data frame without buffering it and keeps decoding', () => {
    const decoder = new FrameDecoder({ maxDataBytes: 16 });
    const bytes = Buffer.concat([encodeData(Buffer.alloc(100, 1)), encodeData(Buffer.from('ok'))]);
    for (const chunks of [[bytes], byteByByte(bytes)]) {
      expect(summary(decodeAll(chunks, decoder))).toEqual([{ kind: 'oversized', length: 100 }, { data: '6f6b' }]);
      expect(decoder.midFrame).toBe(false);
    }
  });

  it('reports a hostile 4 GiB length as oversized instead of allocating it', () => {
    const decoder = new FrameDecoder();
    const frames = decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    expect(frames).toEqual([{ kind: 'oversized', length: 0xffffffff }]);
    expect(decoder.midFrame).toBe(true);
  });

  it('refuses a control frame over 512 bytes', () => {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(513, 4);
    expect(() => new FrameDecoder().push(header)).toThrow(ProtocolError);
    expect(() => new FrameDecoder().push(header)).toThrow(/513 bytes exceeds the 512-byte limit/);
  });

  it('refuses a control frame whose field overruns it', () => {
    const frame = encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]);
    frame.writeUInt32BE(999, 16); // the content type's length
    expect(() => new FrameDecoder().push(frame)).toThrow(/overruns/);
  });

  it('refuses a control frame too short to hold its type', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 2, 0, 0]))).toThrow(/too short/);
  });

  it('knows when a stream ends mid-frame', () => {
    const decoder = new FrameDecoder();
    decoder.push(stream.subarray(0, 30));
    expect(decoder.midFrame).toBe(true);
  });
});
