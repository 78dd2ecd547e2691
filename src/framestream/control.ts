/**
 * Control frames: encode and decode, bytes in, plain objects out.
 *
 * Wire form: 0x00000000 (escape), u32 length, u32 control type, then fields
 * (u32 field type, u32 length, bytes). Only CONTENT_TYPE fields are defined.
 */
import { ProtocolError } from '../util/errors.js';
import {
  CONTROL_ESCAPE,
  CONTROL_FIELD_CONTENT_TYPE,
  MAX_CONTROL_FRAME_BYTES,
  controlTypeName,
  type ControlType,
} from './limits.js';

export interface ControlFrame {
  type: number;
  contentTypes: string[];
}

export function decodeControl(payload: Uint8Array): ControlFrame {
  if (payload.length < 4) throw new ProtocolError(`control frame of ${payload.length} bytes is too short for its type`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = view.getUint32(0);
  const contentTypes: string[] = [];
  let offset = 4;
  while (offset < payload.length) {
    if (payload.length - offset < 8) {
      throw new ProtocolError(`${controlTypeName(type)} control frame has a truncated field header`);
    }
    const fieldType = view.getUint32(offset);
    const fieldLength = view.getUint32(offset + 4);
    offset += 8;
    if (fieldLength > payload.length - offset) {
      throw new ProtocolError(`${controlTypeName(type)} control frame field overruns the frame`);
    }
    // Unknown field types are skipped: the spec lets later versions add fields.
    if (fieldType === CONTROL_FIELD_CONTENT_TYPE) {
      contentTypes.push(Buffer.from(payload.buffer, payload.byteOffset + offset, fieldLength).toString('latin1'));
    }
    offset += fieldLength;
  }
  return { type, contentTypes };
}

/** The whole control frame, escape and length included, ready to write to a socket. */
export function encodeControl(type: ControlType, contentTypes: readonly string[] = []): Buffer {
  const fields = contentTypes.map((ct) => Buffer.from(ct, 'latin1'));
  const payloadLength = 4 + fields.reduce((sum, f) => sum + 8 + f.length, 0);
  if (payloadLength > MAX_CONTROL_FRAME_BYTES) throw new RangeError('control frame would exceed 512 bytes');
  const out = Buffer.alloc(8 + payloadLength);
  out.writeUInt32BE(CONTROL_ESCAPE, 0);
  out.writeUInt32BE(payloadLength, 4);
  out.writeUInt32BE(type, 8);
  let offset = 12;
  for (const field of fields) {
    out.writeUInt32BE(CONTROL_FIELD_CONTENT_TYPE, offset);
    out.writeUInt32BE(field.length, offset + 4);
    field.copy(out, offset + 8);
    offset += 8 + field.length;
  }
  return out;
}

/** A data frame with its length prefix; for producers in tests and benchmarks. */
export function encodeData(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}
