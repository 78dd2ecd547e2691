/**
 * The dnstap schema is proto/dnstap.proto; decode.ts reads the few fields it needs by their
 * numbers there. Tests encode frames from the same file with protobufjs (test/support/dnstap.ts).
 */

/** Message.Type values this daemon cares about (see proto/dnstap.proto). */
export const MessageType = {
  CLIENT_QUERY: 5,
  CLIENT_RESPONSE: 6,
} as const;
