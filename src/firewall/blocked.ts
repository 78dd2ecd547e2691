/**
 * What the kernel recorded as blocked: the packet path itself adds (client, destination,
 * protocol, port) to a set just before the DROP (an nftables dynamic set, or an ipset the
 * SET target fills), with a counter and a timeout, and the daemon drains it every few
 * seconds. No packet goes to userspace; a dropped packet costs one hash lookup or insert.
 *
 * Why a set and not NFLOG: NFLOG sends every dropped packet (or a rate-limited share) up a
 * netlink socket, and a container that floods drops would make us read all of them; a set
 * folds a flood into one element per destination, and its size bounds the kernel's memory.
 *
 * Here: the ipset side as text, both ways. Pure; no I/O. (The nftables side is nft/blocked.ts.)
 */
import type { Family } from './ipset.js';

export interface BlockedAttempt {
  client: string;
  address: string;
  protocol: 'tcp' | 'udp';
  port: number;
  /** Packets since the set was last drained. */
  packets: number;
  /**
   * Seconds since the element's timeout last started: the latest packet for nftables (an
   * update restarts it), the first since the last read for ipset (see rules.ts recordChain).
   */
  idleSeconds: number;
}

/** Reads what was blocked since the last call, and empties the kernel's record. */
export interface BlockedReader {
  readonly family: Family;
  drain(): Promise<BlockedAttempt[]>;
}

export const BLOCKED_SETS = { 4: 'ohn-blocked-v4', 6: 'ohn-blocked-v6' } as const;
/**
 * Distinct (client, destination, port) the kernel holds between two reads; beyond it new
 * ones are not recorded (still dropped) until the next read empties the set.
 */
export const BLOCKED_SET_SIZE = 16_384;
/** An element the daemon never reads (it is stopped) leaves the kernel on its own after this. */
export const BLOCKED_TIMEOUT_SECONDS = 600;
/**
 * Buckets of the ipset's hash, made once: the packet path cannot grow a hash (only ipset's
 * own commands resize one), and with ipset's default of 1024 buckets of 12 the set stopped
 * taking new destinations at about 12,000 elements, well short of BLOCKED_SET_SIZE. At
 * 4096, a full set averages 4 elements a bucket. About 1 MB when full.
 */
export const BLOCKED_HASH_SIZE = 4096;

export function blockedCreateLine(family: Family): string {
  return `create ${BLOCKED_SETS[family]} hash:ip,port,ip family ${family === 6 ? 'inet6' : 'inet'} hashsize ${BLOCKED_HASH_SIZE} timeout ${BLOCKED_TIMEOUT_SECONDS} counters maxelem ${BLOCKED_SET_SIZE}`;
}

const ELEMENT = /^add \S+ (\S+),(tcp|udp):(\d+),(\S+) timeout (\d+) packets (\d+)/;

/** `ipset list -o save` of a blocked set: one attempt per element (ICMP and others are not recorded). */
export function parseBlockedSave(text: string): BlockedAttempt[] {
  const attempts: BlockedAttempt[] = [];
  for (const line of text.split('\n')) {
    const m = ELEMENT.exec(line);
    if (!m) continue;
    attempts.push({
      client: m[1]!,
      protocol: m[2] as 'tcp' | 'udp',
      port: Number(m[3]),
      address: m[4]!,
      packets: Number(m[6]),
      idleSeconds: Math.max(0, BLOCKED_TIMEOUT_SECONDS - Number(m[5])),
    });
  }
  return attempts;
}
