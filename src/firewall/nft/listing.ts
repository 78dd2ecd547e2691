/**
 * `nft -j list table inet on-his-name`, read. Pure: JSON text in, what the backend needs
 * out: whether the table is there, each chain's rule comments in order, and each set's
 * elements with their remaining lifetime, name and counters. Anything it cannot read is
 * left out, never guessed at.
 */
import { isIP } from 'node:net';
import { TABLE } from './render.js';

export interface NftElement {
  address: string;
  /** Seconds left; undefined for an element without a timeout. */
  expires?: number;
  comment?: string;
  packets?: number;
  bytes?: number;
}

export interface NftListing {
  /** Chain name → the comments of its rules, in order ('' for a rule without one). */
  chains: Map<string, string[]>;
  /** Set name → its type and elements. */
  sets: Map<string, { type: string; flags: string[]; elements: NftElement[] }>;
  /** Verdict map name → its elements: a client (address, prefix or range, as nft takes it back) and the chain it jumps to. */
  maps: Map<string, Array<{ key: string; target: string }>>;
}

type Json = Record<string, unknown>;

export function parseListing(json: string): NftListing {
  const listing: NftListing = { chains: new Map(), sets: new Map(), maps: new Map() };
  let items: unknown;
  try {
    items = (JSON.parse(json) as { nftables?: unknown }).nftables;
  } catch {
    return listing;
  }
  if (!Array.isArray(items)) return listing;
  for (const item of items as Json[]) {
    const chain = item.chain as Json | undefined;
    if (chain && chain.table === TABLE && typeof chain.name === 'string') listing.chains.set(chain.name, listing.chains.get(chain.name) ?? []);
    const rule = item.rule as Json | undefined;
    if (rule && rule.table === TABLE && typeof rule.chain === 'string') {
      const rules = listing.chains.get(rule.chain) ?? [];
      rules.push(typeof rule.comment === 'string' ? rule.comment : '');
      listing.chains.set(rule.chain, rules);
    }
    const set = item.set as Json | undefined;
    if (set && set.table === TABLE && typeof set.name === 'string') {
      listing.sets.set(set.name, {
        type: typeof set.type === 'string' ? set.type : '',
        flags: Array.isArray(set.flags) ? (set.flags as unknown[]).filter((f): f is string => typeof f === 'string') : [],
        elements: Array.isArray(set.elem) ? (set.elem as unknown[]).map(element).filter((e): e is NftElement => e !== undefined) : [],
      });
    }
    const map = item.map as Json | undefined;
    if (map && map.table === TABLE && typeof map.name === 'string') {
      listing.maps.set(map.name, Array.isArray(map.elem) ? (map.elem as unknown[]).map(route).filter((r): r is { key: string; target: string } => r !== undefined) : []);
    }
  }
  return listing;
}

/** A verdict map's element, [key, { jump: { target } }], with its key as `nft delete element` takes it. */
function route(raw: unknown): { key: string; target: string } | undefined {
  if (!Array.isArray(raw) || raw.length !== 2) return undefined;
  const [key, verdict] = raw as [unknown, Json | undefined];
  const target = ((verdict?.jump ?? verdict?.goto) as Json | undefined)?.target;
  if (typeof target !== 'string') return undefined;
  const prefix = (key as Json | undefined)?.prefix as { addr?: unknown; len?: unknown } | undefined;
  const range = (key as Json | undefined)?.range as unknown[] | undefined;
  if (typeof key === 'string') return { key, target };
  if (typeof prefix?.addr === 'string' && typeof prefix.len === 'number') return { key: `${prefix.addr}/${prefix.len}`, target };
  if (Array.isArray(range) && typeof range[0] === 'string' && typeof range[1] === 'string') return { key: `${range[0]}-${range[1]}`, target };
  return undefined;
}

function element(raw: unknown): NftElement | undefined {
  if (typeof raw === 'string') return isIP(raw) ? { address: raw } : undefined;
  const elem = (raw as Json | undefined)?.elem as Json | undefined;
  if (!elem || typeof elem.val !== 'string' || !isIP(elem.val)) return undefined;
  const counter = elem.counter as { packets?: unknown; bytes?: unknown } | undefined;
  return {
    address: elem.val,
    ...(typeof elem.expires === 'number' ? { expires: elem.expires } : {}),
    ...(typeof elem.comment === 'string' ? { comment: elem.comment } : {}),
    ...(typeof counter?.packets === 'number' ? { packets: counter.packets } : {}),
    ...(typeof counter?.bytes === 'number' ? { bytes: counter.bytes } : {}),
  };
}
