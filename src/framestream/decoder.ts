/**
 * Frame Streams decoder: a pure byte parser that never sees a socket.
 *
 * push(chunk) accepts bytes split anywhere and returns the frames completed by them.
 * Data frames larger than MAX_DATA_FRAME_BYTES are skipped without being buffered and
 * reported as `oversized`, so a hostile length prefix costs no memory. A control frame
 * over MAX_CONTROL_FRAME_BYTES, or a malformed one, throws a ProtocolError: the caller
 * closes that connection.
 */
import { ProtocolError } from '../util/errors.js';
import { decodeControl, type ControlFrame } from './control.js';
import { CONTROL_ESCAPE, MAX_CONTROL_FRAME_BYTES, MAX_DATA_FRAME_BYTES } from './limits.js';

export type Frame =
  | { kind: 'data'; payload: Buffer }
  | { kind: 'control'; control: ControlFrame }
  | { kind: 'oversized'; length: number };

const State = {
  LENGTH: 0, // waiting for a 4-byte frame length
  CONTROL_LENGTH: 1, // saw the escape, waiting for the control frame length
  CONTROL: 2, // buffering a control frame of `need` bytes
  DATA: 3, // buffering a data frame of `need` bytes
  SKIP: 4, // discarding `need` bytes of an oversized data frame
} as const;
type State = (typeof State)[keyof typeof State];

export class FrameDecoder {
  private state: State = State.LENGTH;
  private need = 4;
  /** Bytes carried over from earlier chunks that did not complete a unit. */
  private carry: Buffer | undefined;
  private readonly maxDataBytes: number;

  constructor(options: { maxDataBytes?: number } = {}) {
    this.maxDataBytes = options.maxDataBytes ?? MAX_DATA_FRAME_BYTES;
  }

  /** True while part of a frame is pending: a stream that ends now ends mid-frame. */
  get midFrame(): boolean {
    return this.state !== State.LENGTH || this.carry !== undefined;
  }

  /** Bytes held back for a frame not yet complete: always less than the largest frame allowed. */
  get buffered(): number {
    return this.carry?.length ?? 0;
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let buf = chunk;
    let offset = 0;
    if (this.carry !== undefined) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    while (offset < buf.length) {
      const available = buf.length - offset;
      if (this.state === State.SKIP) {
        const skipped = Math.min(available, this.need);
        offset += skipped;
        this.need -= skipped;
        if (this.need === 0) this.expectLength();
        continue;
      }
      if (available < this.need) {
        this.carry = Buffer.from(buf.subarray(offset)); // copy: the caller may reuse its chunk
        break;
      }
      const start = offset;
      offset += this.need;
      this.consume(buf, start, frames);
    }
    return frames;
  }

  private consume(buf: Buffer, start: number, frames: Frame[]): void {
    switch (this.state) {
      case State.LENGTH: {
        const length = buf.readUInt32BE(start);
        if (length === CONTROL_ESCAPE) {
          this.state = State.CONTROL_LENGTH;
          this.need = 4;
        } else if (length > this.maxDataBytes) {
          frames.push({ kind: 'oversized', length });
          this.state = State.SKIP;
          this.need = length;
        } else {
          this.state = State.DATA;
          this.need = length;
        }
        return;
      }
      case State.CONTROL_LENGTH: {
        const length = buf.readUInt32BE(start);
        if (length > MAX_CONTROL_FRAME_BYTES) {
          throw new ProtocolError(`control frame of ${length} bytes exceeds the ${MAX_CONTROL_FRAME_BYTES}-byte limit`);
        }
        if (length < 4) throw new ProtocolError(`control frame of ${length} bytes is too short for its type`);
        this.state = State.CONTROL;
        this.need = length;
        return;
      }
      case State.CONTROL:
        frames.push({ kind: 'control', control: decodeControl(buf.subarray(start, start + this.need)) });
        this.expectLength();
        return;
      case State.DATA:
        frames.push({ kind: 'data', payload: buf.subarray(start, start + this.need) });
        this.expectLength();
        return;
      case State.SKIP:
        return; // handled in push(): skipping never needs the bytes in one piece
    }
  }

  private expectLength(): void {
    this.state = State.LENGTH;
    this.need = 4;
  }
}
