/**
 * DNS messages built byte by byte, for names no encoder will write: a label that holds a
 * '.', a '\' or a NUL. dns-packet splits its input on dots, so it cannot make these.
 */

/** A wire name from its labels (each a string of Latin-1 bytes, or bytes), root-terminated. */
export function wireName(...labels: Array<string | Uint8Array>): Buffer {
  const parts = labels.map((label) => {
    const bytes = typeof label === 'string' ? Buffer.from(label, 'latin1') : Buffer.from(label);
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`label of ${bytes.length} bytes`);
    return Buffer.concat([Buffer.of(bytes.length), bytes]);
  });
  return Buffer.concat([...parts, Buffer.of(0)]);
}

/** A compression pointer to `offset` (12 is the question name). */
export function pointer(offset: number): Buffer {
  return Buffer.of(0xc0 | (offset >> 8), offset & 0xff);
}

export interface WireRecord {
  /** The owner name's wire bytes (a wireName, or a pointer). */
  owner: Buffer;
  type: 'A' | 'AAAA' | 'CNAME';
  /** A and AAAA: the address bytes; CNAME: the target's wire bytes. */
  data: Buffer;
  ttl?: number;
}

const TYPES = { A: 1, CNAME: 5, AAAA: 28 } as const;

function record(r: WireRecord): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPES[r.type], 0);
  fixed.writeUInt16BE(1, 2); // IN
  fixed.writeUInt32BE(r.ttl ?? 60, 4);
  fixed.writeUInt16BE(r.data.length, 8);
  return Buffer.concat([r.owner, fixed, r.data]);
}

/** A NOERROR response (or, with `query`, a query) with one A/IN question and these answers. */
export function wireMessage(question: Buffer, answers: WireRecord[] = [], options: { id?: number; query?: boolean } = {}): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(options.id ?? 4242, 0);
  header.writeUInt16BE(options.query ? 0x0100 : 0x8180, 2); // RD; for a response also QR and RA
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, question, Buffer.from([0, 1, 0, 1]), ...answers.map(record)]);
}

/**
 * A NOERROR response to the query `query` as it arrived (the same ID and question bytes,
 * letter case included, as a resolver must echo them) with these answers.
 */
export function replyTo(query: Buffer, answers: WireRecord[]): Buffer {
  const questionEnd = 12 + skipQuestionName(query, 12) + 4;
  const header = Buffer.from(query.subarray(0, 12));
  header.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100), 2); // QR, RA, the query's RD
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt32BE(0, 8); // no authority or additional records
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers.map(record)]);
}

/** The length of the uncompressed name at `at`, its root byte included. */
function skipQuestionName(buf: Buffer, at: number): number {
  let length = 0;
  while (buf[at + length] !== 0) length += 1 + buf[at + length]!;
  return length + 1;
}

/** 198.51.100.x as A record data. */
export function v4(last: number): Buffer {
  return Buffer.of(198, 51, 100, last);
}
