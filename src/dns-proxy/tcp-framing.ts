/**
 * DNS over TCP frames each message with a two-byte length (RFC 1035 4.2.2, RFC 7766).
 * Pure: chunks in, whole messages out; a message is at most 65,535 bytes by construction,
 * so a reader never holds more than one message and a chunk.
 */
export class TcpMessages {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const messages: Buffer[] = [];
    while (buf.length >= 2) {
      const end = 2 + buf.readUInt16BE(0);
      if (buf.length < end) break;
      messages.push(buf.subarray(2, end));
      buf = buf.subarray(end);
    }
    this.pending = Buffer.from(buf);
    return messages;
  }

  /** Bytes of a message still incomplete. */
  get buffered(): number {
    return this.pending.length;
  }
}

export function withLength(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}
