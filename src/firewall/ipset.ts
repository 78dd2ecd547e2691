/**
 * The ipset backend's kernel state as text, both ways. Pure; no I/O.
 *
 * One set per address family holds every allowed address (on-his-name-v6 the same, family inet6):
 *   create on-his-name-v4 hash:ip family inet counters timeout 0 comment maxelem N
 *   add on-his-name-v4 198.51.100.7 timeout 300 comment "example.com."
 * Each element's timeout is its remaining lifetime, so the kernel drops it on time even
 * when the daemon is gone (fail closed); `timeout 0` is an element that never expires.
 * Counters count the first packet of each new connection, as the per-address rules do.
 * Why hash:ip and not hash:ip,port: the ports are one setting for every address, so they
 * belong in the one rule (`-m multiport`), not repeated in every element. One element per
 * address keeps one timeout, one comment and one counter per address, half the elements
 * for ports 80 and 443, and a change of --ports is one rule rewrite, not a refill.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Entry } from './backend.js';

export type Family = 4 | 6;
export const SET_V4 = 'on-his-name-v4';
export const SET_V6 = 'on-his-name-v6';
export const OWNED_SETS = [SET_V4, SET_V6] as const;
export const SET_TYPE = 'hash:ip';
/** Room for the daemon's largest queue (100,000) and then some; ipset's own default is 65,536. */
export const DEFAULT_MAX_ELEMENTS = 262_144;
/** The kernel's largest element timeout, in seconds (UINT_MAX / 2 milliseconds): about 24.8 days. */
export const MAX_TIMEOUT_SECONDS = 2_147_483;
/** The kernel refuses longer comments. */
const MAX_COMMENT = 255;

export interface SetHeader {
  name: string;
  type: string;
  family?: string;
  maxelem?: number;
  /** Present when the set was created with timeout support. */
  timeout?: number;
  counters: boolean;
  comment: boolean;
}

export interface SetElement {
  address: string;
  /** Seconds left; 0 for an element that never expires. */
  timeout?: number;
  packets?: number;
  bytes?: number;
  comment?: string;
}

export interface SavedSet {
  header: SetHeader;
  elements: SetElement[];
}

export function setFor(family: Family, policy?: string): string {
  if (policy !== undefined && policy !== 'default') return `${POLICY_SET_PREFIX}${policy}-v${family}`;
  return family === 6 ? SET_V6 : SET_V4;
}

/** A policy's own sets: `ohn-p-NAME-v4`; ipset takes names of 31 characters, the policy's 22 fit. */
export const POLICY_SET_PREFIX = 'ohn-p-';
/** The spare a set grows through (`ohn-grow-` and a hash of its name): `NAME-grow` would not fit 31 characters for a long policy name. */
export const GROW_SET_PREFIX = 'ohn-grow-';

/** ipset's name for the family. */
function familyWord(family: Family): 'inet' | 'inet6' {
  return family === 6 ? 'inet6' : 'inet';
}

export function createLine(set: string, maxElements: number, family: Family = 4): string {
  return `create ${set} ${SET_TYPE} family ${familyWord(family)} counters timeout 0 comment maxelem ${maxElements}`;
}

/**
 * `ipset restore -exist` input that adds (or refreshes: the kernel keeps the counters and
 * takes the new timeout and comment) and deletes. `-exist` makes a retry after a partial
 * failure harmless: adding what is there and deleting what is gone both succeed.
 */
export function renderApply(set: string, add: readonly Entry[], remove: readonly Entry[], nowSeconds: number): string {
  const lines = [
    ...remove.map((e) => `del ${set} ${checkedAddress(e.address)}`),
    ...add.map((e) => {
      const comment = encodeComment(e.name);
      return `add ${set} ${checkedAddress(e.address)} timeout ${elementTimeout(e.expiresAt, nowSeconds)}${comment === undefined ? '' : ` comment "${comment}"`}`;
    }),
  ];
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The element timeout for an expiry in wall-clock seconds. No expiry: 0, never expires (as
 * a per-address rule). An expiry already past still gets 1 second, never 0, which would
 * mean "forever". Beyond the kernel's maximum it is cut to the maximum: it closes early.
 */
export function elementTimeout(expiresAt: number | undefined, nowSeconds: number): number {
  if (expiresAt === undefined) return 0;
  return Math.min(MAX_TIMEOUT_SECONDS, Math.max(1, Math.ceil(expiresAt - nowSeconds)));
}

/** Addresses reach restore text only as bare IP literals: nothing else can ride along on the line. */
function checkedAddress(address: string): string {
  if (!isPlainAddress(address)) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  return address;
}

/** An IPv4 or IPv6 literal without a zone (`%eth0`), which isIPv6 would let through. */
function isPlainAddress(address: string): boolean {
  return isIPv4(address) || (isIPv6(address) && /^[0-9A-Fa-f:.]+$/.test(address));
}

/**
 * A DNS name as an ipset comment. ipset refuses `"` and cuts at 255 characters, and names
 * off the wire can hold any byte, so everything outside letters, digits and `-_.*` is
 * written as DNS presentation escapes (`\DDD`, one per UTF-8 byte, RFC 1035), which
 * decodeComment reverses. A name too long once escaped is left out, not cut.
 */
export function encodeComment(name: string | undefined): string | undefined {
  if (!name) return undefined;
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.*-]/.test(c) ? c : `\\${String(byte).padStart(3, '0')}`;
  }
  return out.length <= MAX_COMMENT ? out : undefined;
}

export function decodeComment(comment: string): string {
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of comment.matchAll(/\\(\d{3})/g)) {
    if (Number(m[1]) > 255) continue;
    parts.push(Buffer.from(comment.slice(last, m.index), 'utf8'), Buffer.of(Number(m[1])));
    last = m.index! + m[0].length;
  }
  parts.push(Buffer.from(comment.slice(last), 'utf8'));
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Read `ipset list -o save SET`: one `create` line, then one `add` line per element, e.g.
 *   create on-his-name-v4 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 counters comment bucketsize 12 initval 0x8b69e9c5
 *   add on-his-name-v4 198.51.100.10 timeout 299 packets 0 bytes 0 comment "example.com."
 * Lines for other sets and lines it cannot read are skipped, never guessed at.
 */
export function parseSave(text: string, set: string): SavedSet | undefined {
  let header: SetHeader | undefined;
  const elements: SetElement[] = [];
  for (const line of text.split('\n')) {
    const words = splitSaveLine(line);
    if (words[1] !== set) continue;
    if (words[0] === 'create' && words[2]) header = parseHeader(set, words[2], words.slice(3));
    else if (words[0] === 'add' && words[2] && isPlainAddress(words[2])) elements.push(parseElement(words[2], words.slice(3)));
  }
  return header && { header, elements };
}

function parseHeader(name: string, type: string, words: readonly string[]): SetHeader {
  const value = (key: string) => {
    const at = words.indexOf(key);
    return at >= 0 ? words[at + 1] : undefined;
  };
  const number = (key: string) => (value(key) === undefined ? undefined : Number(value(key)));
  const family = value('family');
  const maxelem = number('maxelem');
  const timeout = number('timeout');
  return {
    name,
    type,
    ...(family !== undefined ? { family } : {}),
    ...(maxelem !== undefined ? { maxelem } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    counters: words.includes('counters'),
    comment: words.includes('comment'),
  };
}

function parseElement(address: string, words: readonly string[]): SetElement {
  const element: SetElement = { address };
  for (let i = 0; i + 1 < words.length; i += 2) {
    const [key, value] = [words[i]!, words[i + 1]!];
    if (key === 'comment') element.comment = decodeComment(value);
    else if ((key === 'timeout' || key === 'packets' || key === 'bytes') && /^\d+$/.test(value)) element[key] = Number(value);
  }
  return element;
}

/** Words of a save line; a comment is in double quotes and may hold spaces (never `"`). */
function splitSaveLine(line: string): string[] {
  const words: string[] = [];
  const pattern = /"([^"]*)"|(\S+)/g;
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) words.push(m[1] ?? m[2] ?? '');
  return words;
}

/** Why an existing set is not one we can use, or undefined when it is. */
export function incompatibility(header: SetHeader, family: Family = 4): string | undefined {
  const wanted = familyWord(family);
  const missing = [
    header.type !== SET_TYPE && `type ${SET_TYPE} (it is ${header.type})`,
    (header.family ?? 'inet') !== wanted && `family ${wanted} (it is ${header.family ?? 'inet'})`,
    header.timeout === undefined && 'timeout support',
    !header.counters && 'counters',
    !header.comment && 'comments',
  ].filter((m): m is string => typeof m === 'string');
  return missing.length ? `needs ${missing.join(', ')}` : undefined;
}

/** The elements as the entries they stand for; the remaining timeout becomes an expiry. */
export function adoptedEntries(elements: readonly SetElement[], nowSeconds: number): Entry[] {
  return elements.map((e) => ({
    address: e.address,
    ...(e.comment ? { name: e.comment } : {}),
    ...(e.timeout ? { expiresAt: nowSeconds + e.timeout } : {}),
  }));
}
