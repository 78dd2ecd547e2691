/** Address ranges in CIDR notation. Pure: node's BlockList does the arithmetic. */
import { BlockList, isIP } from 'node:net';

/** Two ranges share an address: one holds the other's first address. False for anything unreadable. */
export function overlaps(a: string, b: string): boolean {
  const [ra, rb] = [range(a), range(b)];
  if (!ra || !rb || ra.family !== rb.family) return false;
  return ra.list.check(rb.address, ra.family) || rb.list.check(ra.address, rb.family);
}

/** A range as a BlockList with its first address; a bare address is its own /32 or /128. */
export function range(cidr: string): { address: string; bits: number; family: 'ipv4' | 'ipv6'; list: BlockList } | undefined {
  const [address = '', text] = cidr.split('/');
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const bits = text === undefined ? (version === 4 ? 32 : 128) : Number(text);
  const list = new BlockList();
  list.addSubnet(address, bits, family);
  return { address, bits, family, list };
}
