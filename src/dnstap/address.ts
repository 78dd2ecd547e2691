/**
 * Socket addresses in dnstap are raw bytes. Their length, not socket_family, says what
 * they are: CoreDNS may send a 16-byte IPv4-mapped address with family INET.
 */
import { DecodeError } from '../util/errors.js';
import { formatIPv6Groups } from '../util/address.js';

/** The address in `bytes` from `at` (all of them by default), `length` bytes long. */
export function formatAddress(bytes: Uint8Array, at = 0, length = bytes.length - at): string {
  if (length === 4) return formatIPv4(bytes, at);
  if (length === 16) return isIPv4Mapped(bytes, at) ? formatIPv4(bytes, at + 12) : formatIPv6(bytes, at);
  throw new DecodeError(`socket address of ${length} bytes is neither IPv4 (4) nor IPv6 (16)`);
}

export function formatIPv4(bytes: Uint8Array, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

function isIPv4Mapped(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 10; i++) if (bytes[i] !== 0) return false;
  return bytes[at + 10] === 0xff && bytes[at + 11] === 0xff;
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups as "::". */
export function formatIPv6(bytes: Uint8Array, at = 0): string {
  const groups: number[] = [];
  for (let i = at; i < at + 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return formatIPv6Groups(groups);
}
