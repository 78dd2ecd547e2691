/** The public dnstap schema, loaded once from proto/dnstap.proto with protobufjs. */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const PROTO_PATH = fileURLToPath(new URL('../../proto/dnstap.proto', import.meta.url));

export const DnstapType = protobuf.loadSync(PROTO_PATH).lookupType('dnstap.Dnstap');

/** Message.Type values this daemon cares about (see proto/dnstap.proto). */
export const MessageType = {
  CLIENT_QUERY: 5,
  CLIENT_RESPONSE: 6,
} as const;
