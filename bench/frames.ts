/** The decode benchmarks' stream: recorded dnstap CLIENT_RESPONSE frames, as a producer sends them. */
import { encodeData } from '../src/framestream/control.js';
import { clientResponse } from '../test/support/dnstap.js';

/** Data frames for 1,000 answers over 100 names, 1-3 addresses each; one in `allowedEvery` is for an allowed name. */
export function recordedBlock(allowedEvery: number): Buffer {
  return Buffer.concat(recordedFrames(allowedEvery).map((frame) => encodeData(frame)));
}

/** The same answers as dnstap payloads, without the Frame Streams length. */
export function recordedFrames(allowedEvery: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const name = `host${i % 100}.${i % allowedEvery === 0 ? 'allowed' : 'other'}.example`;
    const answers = Array.from({ length: 1 + (i % 3) }, (_, k) => ({ type: 'A' as const, name, ttl: 300, data: `198.51.${(i >> 8) & 255}.${(i + k) & 255}` }));
    frames.push(clientResponse(`172.18.0.${2 + (i % 50)}`, name, answers));
  }
  return frames;
}

/** What the benchmarks allow: every name of an "allowed" stream. */
export const ALLOW = ['**.allowed.example.'];

export const MIXES = [
  { label: 'all answers allowed', allowedEvery: 1 },
  { label: 'one answer in 3 allowed', allowedEvery: 3 },
];
