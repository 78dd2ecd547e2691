/** Producers' side of Frame Streams for tests: whole streams as bytes, and random splits. */
import { encodeControl, encodeData } from '../../src/framestream/control.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../src/framestream/limits.js';

export function bidirectionalStream(payloads: readonly Uint8Array[], contentType = DNSTAP_CONTENT_TYPE): Buffer {
  return Buffer.concat([encodeControl(ControlType.READY, [contentType]), unidirectionalStream(payloads, contentType)]);
}

export function unidirectionalStream(payloads: readonly Uint8Array[], contentType = DNSTAP_CONTENT_TYPE): Buffer {
  return Buffer.concat([
    encodeControl(ControlType.START, [contentType]),
    ...payloads.map((p) => encodeData(p)),
    encodeControl(ControlType.STOP),
  ]);
}

/** A tiny deterministic PRNG (mulberry32), so a failing split can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomSplits(bytes: Buffer, random: () => number, maxChunk = 64): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

export function byteByByte(bytes: Buffer): Buffer[] {
  return [...bytes].map((b) => Buffer.from([b]));
}
