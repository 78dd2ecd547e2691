/**
 * Hostile bytes for property tests: fast-check arbitraries that damage a valid message the
 * ways real damage and real attackers do (bit flips, truncation, corrupted length fields,
 * inserted junk, DNS compression pointers that loop).
 */
import fc from 'fast-check';

/** Runs per property: fast-check's default count with a fixed seed, so CI replays the same cases. */
export const PROPERTY_RUNS = { seed: 0x0115_2026, numRuns: 100 } as const;

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'pointer-loop'; at: number; back: number };

/** Lengths that sit on the edges of the limits the decoders enforce. */
const EDGE_U32 = fc.constantFrom(0, 1, 3, 4, 5, 511, 512, 513, 0xffff, 0x10_0000, 0x10_0001, 0x7fff_ffff, 0xffff_ffff);

/** Positions are fractions of the message, so one mutation list fits a message of any length. */
const position = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('u32' as const), at: position, value: fc.oneof(EDGE_U32, fc.nat()) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('pointer-loop' as const), at: position, back: fc.nat(16) }),
);

export function applyMutations(original: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(original);
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = Math.floor(m.at * bytes.length);
    switch (m.kind) {
      case 'flip':
        bytes[at] = bytes[at]! ^ (1 << m.bit);
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'u32':
        if (at + 4 <= bytes.length) bytes.writeUInt32BE(m.value >>> 0, at);
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'pointer-loop': {
        // A compression pointer to itself or to a little before itself: a name that never ends.
        const target = Math.max(0, at - m.back);
        if (at + 2 <= bytes.length) bytes.writeUInt16BE(0xc000 | (target & 0x3fff), at);
        break;
      }
    }
  }
  return bytes;
}

/** A valid message with one to four mutations applied. */
export function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([bytes, ms]) => applyMutations(bytes, ms));
}

/** Split points for feeding a stream in pieces. */
export function splitAt(bytes: Uint8Array, fractions: readonly number[]): Buffer[] {
  const cuts = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) chunks.push(Buffer.from(bytes.subarray(from, cut)));
    from = Math.max(from, cut);
  }
  return chunks;
}

export const splits = fc.array(position, { maxLength: 12 });
