import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/util/errors.js';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { FrameDecoder, type Frame } from '../../../src/framestream/decoder.js';
import { ControlType, DNSTAP_CONTENT_TYPE, MAX_CONTROL_FRAME_BYTES } from '../../../src/framestream/limits.js';
import { PROPERTY_RUNS, mutated, splitAt, splits } from '../../support/mutate.js';

/** Small enough that random streams cross it often. */
const MAX_DATA = 64;
/** The most a decoder may hold between pushes: the largest frame it buffers, plus a header. */
const BUFFER_BOUND = Math.max(MAX_DATA, MAX_CONTROL_FRAME_BYTES) + 8;

const contentType = fc.oneof(fc.constant(DNSTAP_CONTENT_TYPE), fc.string({ maxLength: 20 }));
const controlType = fc.constantFrom(...Object.values(ControlType), 0x42);
/** One frame as a producer writes it: data (a zero length would be the escape) or control. */
const wireFrame = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: MAX_DATA + 16 }).map((p) => encodeData(p)),
  fc.tuple(controlType, fc.array(contentType, { maxLength: 3 })).map(([type, cts]) => encodeControl(type as ControlType, cts)),
);
const stream = fc.array(wireFrame, { maxLength: 12 }).map((frames) => Buffer.concat(frames));

/** Frames as comparable values: payload bytes are copied out before the next push can reuse them. */
function plain(frame: Frame): unknown {
  if (frame.kind === 'data') return { data: frame.payload.toString('hex') };
  if (frame.kind === 'control') return { control: frame.control };
  return { oversized: frame.length };
}

function feed(chunks: readonly Buffer[]): { frames: unknown[]; error?: unknown; maxBuffered: number } {
  const decoder = new FrameDecoder({ maxDataBytes: MAX_DATA });
  const frames: unknown[] = [];
  let maxBuffered = 0;
  try {
    for (const chunk of chunks) {
      for (const frame of decoder.push(chunk)) frames.push(plain(frame));
      maxBuffered = Math.max(maxBuffered, decoder.buffered);
    }
  } catch (error) {
    return { frames, error, maxBuffered };
  }
  return { frames, maxBuffered };
}

describe('FrameDecoder on random and hostile streams', () => {
  it('gives the same frames (and the same error) however a valid stream is split', () => {
    fc.assert(
      fc.property(stream, splits, (bytes, cuts) => {
        const whole = feed([bytes]);
        const pieces = feed(splitAt(bytes, cuts));
        expect(pieces.frames).toEqual(whole.frames);
        expect(String(pieces.error)).toEqual(String(whole.error));
      }),
      PROPERTY_RUNS,
    );
  });

  it('decodes every frame of a valid stream of well-formed frames', () => {
    const wellFormed = fc.array(fc.uint8Array({ minLength: 1, maxLength: MAX_DATA }), { maxLength: 12 });
    fc.assert(
      fc.property(wellFormed, splits, (payloads, cuts) => {
        const bytes = Buffer.concat([encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]), ...payloads.map((p) => encodeData(p))]);
        const { frames, error } = feed(splitAt(bytes, cuts));
        expect(error).toBeUndefined();
        expect(frames.slice(1)).toEqual(payloads.map((p) => ({ data: Buffer.from(p).toString('hex') })));
      }),
      PROPERTY_RUNS,
    );
  });

  it('throws nothing but a ProtocolError and holds a bounded number of bytes, on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), splits, (bytes, cuts) => {
        const { error, maxBuffered } = feed(splitAt(bytes, cuts));
        if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
        expect(maxBuffered).toBeLessThanOrEqual(BUFFER_BOUND);
      }),
      PROPERTY_RUNS,
    );
  });

  it('throws nothing but a ProtocolError and holds a bounded number of bytes, on mutated valid streams', () => {
    fc.assert(
      fc.property(mutated(stream), splits, (bytes, cuts) => {
        const { error, maxBuffered } = feed(splitAt(bytes, cuts));
        if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
        expect(maxBuffered).toBeLessThanOrEqual(BUFFER_BOUND);
      }),
      PROPERTY_RUNS,
    );
  });

  it('skips a hostile length prefix without buffering it, and reads on', () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xf0]), Buffer.alloc(4096, 7)]);
    const decoder = new FrameDecoder({ maxDataBytes: MAX_DATA });
    expect(decoder.push(bytes)).toEqual([{ kind: 'oversized', length: 0xfffffff0 }]);
    expect(decoder.buffered).toBe(0);
    expect(decoder.midFrame).toBe(true);
  });
});
