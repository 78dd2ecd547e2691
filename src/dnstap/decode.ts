/**
 * dnstap decode: protobuf bytes in, a plain object out, no I/O.
 * Throws a DecodeError with a precise reason for bytes that are not a dnstap message.
 */
import { DecodeError } from '../util/errors.js';
import { formatAddress } from './address.js';
import { DnstapType } from './schema.js';

export interface DnstapMessage {
  /** Message.Type, e.g. 6 for CLIENT_RESPONSE. */
  type: number;
  identity?: string;
  queryAddress?: string;
  queryPort?: number;
  /** The DNS response as sent to the client; absent when the producer logs without `full`. */
  responseMessage?: Uint8Array;
}

/** The shape protobufjs gives us; fields left unset are absent. */
interface RawDnstap {
  identity?: Uint8Array;
  message?: {
    type: number;
    queryAddress?: Uint8Array;
    queryPort?: number;
    responseMessage?: Uint8Array;
  };
}

export function decodeDnstap(bytes: Uint8Array): DnstapMessage {
  let raw: RawDnstap;
  try {
    raw = DnstapType.decode(bytes) as unknown as RawDnstap;
  } catch (err) {
    throw new DecodeError(`not a dnstap protobuf message: ${(err as Error).message}`, { cause: err });
  }
  const message = raw.message;
  if (!message) throw new DecodeError('dnstap frame carries no Message (type MESSAGE expected)');
  const out: DnstapMessage = { type: message.type };
  if (raw.identity?.length) out.identity = Buffer.from(raw.identity).toString('utf8');
  if (message.queryAddress?.length) out.queryAddress = formatAddress(message.queryAddress);
  if (message.queryPort !== undefined) out.queryPort = message.queryPort;
  if (message.responseMessage?.length) out.responseMessage = message.responseMessage;
  return out;
}
