/**
 * The nftables side of the blocked view (firewall/blocked.ts): read a family's set of
 * blocked attempts and remove what was read. The read and the removal are two commands: a
 * packet that lands between them is dropped as ever but goes uncounted, so counts are "at
 * least".
 *
 * Removal is of the elements read, by key, not a `flush set`: while the packet path keeps
 * adding (a flood), the kernel's hash table grows, and a walk of it then visits some
 * elements twice. A listing repeats them (hence the dedup below), and a flush, which
 * toggles each element it visits, leaves those in place, so the next read counted their
 * packets again (seen here on Linux 6.18 as flood destinations sent one datagram each
 * read back with counts of 2 and 3). A deletion by key looks each one up once.
 */
import type { BlockedAttempt, BlockedReader } from '../blocked.js';
import { BLOCKED_TIMEOUT_SECONDS } from '../blocked.js';
import { BLOCKED_NFT_SETS, FAMILY, TABLE } from './render.js';
import type { NftRunner } from './runner.js';

type Json = Record<string, unknown>;

/** A full set's deletion (16,384 keys, about 1 MB of text) takes some 100 ms: ample room. */
const DELETE_TIMEOUT_MS = 10_000;

export function nftBlockedReader(runner: NftRunner, family: 4 | 6): BlockedReader {
  const set = BLOCKED_NFT_SETS[family];
  return {
    family,
    async drain() {
      const text = await runner.listSet(set);
      if (text === undefined) return [];
      const attempts = parseBlockedSet(text);
      if (attempts.length === 0) return attempts;
      const keys = attempts.map((a) => `${a.client} . ${a.address} . ${a.protocol} . ${a.port}`);
      try {
        await runner.apply(`delete element ${FAMILY} ${TABLE} ${set} { ${keys.join(', ')} }\n`, { timeoutMs: DELETE_TIMEOUT_MS });
      } catch {
        // One of them timed out between the read and the deletion (after BLOCKED_TIMEOUT_SECONDS
        // without a packet), which fails the whole transaction: empty the set instead.
        await runner.apply(`flush set ${FAMILY} ${TABLE} ${set}\n`);
      }
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
  // A listing taken while the set grows may hold an element twice: one attempt each.
  const seen = new Set<string>();
  for (const item of Array.isArray(items) ? (items as Json[]) : []) {
    const elements = (item.set as Json | undefined)?.elem;
    for (const raw of Array.isArray(elements) ? elements : []) {
      const elem = (raw as Json).elem as Json | undefined;
      const concat = (elem?.val as Json | undefined)?.concat;
      if (!Array.isArray(concat) || concat.length !== 4) continue;
      const [client, address, protocol, port] = concat as unknown[];
      if (typeof client !== 'string' || typeof address !== 'string' || (protocol !== 'tcp' && protocol !== 'udp') || typeof port !== 'number') continue;
      const key = `${client} ${address} ${protocol} ${port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const counter = elem!.counter as { packets?: unknown } | undefined;
      const expires = typeof elem!.expires === 'number' ? elem!.expires : BLOCKED_TIMEOUT_SECONDS;
      attempts.push({ client, address, protocol, port, packets: typeof counter?.packets === 'number' ? counter.packets : 1, idleSeconds: Math.max(0, BLOCKED_TIMEOUT_SECONDS - expires) });
    }
  }
  return attempts;
}
