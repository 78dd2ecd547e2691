/**
 * The nftables side of the blocked view (firewall/blocked.ts): read a family's set of
 * blocked attempts and empty it. The read and the flush are two commands: a packet that
 * lands between them is dropped as ever but goes uncounted, so counts are "at least".
 */
import type { BlockedAttempt, BlockedReader } from '../blocked.js';
import { BLOCKED_TIMEOUT_SECONDS } from '../blocked.js';
import { BLOCKED_NFT_SETS, FAMILY, TABLE } from './render.js';
import type { NftRunner } from './runner.js';

type Json = Record<string, unknown>;

export function nftBlockedReader(runner: NftRunner, family: 4 | 6): BlockedReader {
  const set = BLOCKED_NFT_SETS[family];
  return {
    family,
    async drain() {
      const text = await runner.listSet(set);
      if (text === undefined) return [];
      const attempts = parseBlockedSet(text);
      if (attempts.length) await runner.apply(`flush set ${FAMILY} ${TABLE} ${set}\n`);
      return attempts;
    },
  };
}

/** `nft -j list set` of a blocked set: elements `client . address . protocol . port`, with counter and expiry. */
export function parseBlockedSet(json: string): BlockedAttempt[] {
  let items: unknown;
  try {
    items = (JSON.parse(json) as { nftables?: unknown }).nftables;
  } catch {
    return [];
  }
  const attempts: BlockedAttempt[] = [];
  for (const item of Array.isArray(items) ? (items as Json[]) : []) {
    const elements = (item.set as Json | undefined)?.elem;
    for (const raw of Array.isArray(elements) ? elements : []) {
      const elem = (raw as Json).elem as Json | undefined;
      const concat = (elem?.val as Json | undefined)?.concat;
      if (!Array.isArray(concat) || concat.length !== 4) continue;
      const [client, address, protocol, port] = concat as unknown[];
      if (typeof client !== 'string' || typeof address !== 'string' || (protocol !== 'tcp' && protocol !== 'udp') || typeof port !== 'number') continue;
      const counter = elem!.counter as { packets?: unknown } | undefined;
      const expires = typeof elem!.expires === 'number' ? elem!.expires : BLOCKED_TIMEOUT_SECONDS;
      attempts.push({ client, address, protocol, port, packets: typeof counter?.packets === 'number' ? counter.packets : 1, idleSeconds: Math.max(0, BLOCKED_TIMEOUT_SECONDS - expires) });
    }
  }
  return attempts;
}
