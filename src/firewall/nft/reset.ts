/** `on-his-name reset` for the nftables backend: the table goes, and the line says what it held. */
import { parseListing } from './listing.js';
import type { NftRunner } from './runner.js';

/** A description of what the deleted table held, or undefined when there was none. */
export async function removeTable(runner: NftRunner): Promise<string | undefined> {
  const text = await runner.list();
  if (text === undefined) return undefined;
  const listing = parseListing(text);
  if (!(await runner.deleteTable())) return undefined;
  // The blocked sets hold a few seconds of attempts, not addresses: not worth a word.
  const sets = [...listing.sets].filter(([name]) => !name.startsWith('blocked')).map(([name, set]) => `${name}: ${set.elements.length} address${set.elements.length === 1 ? '' : 'es'}`);
  return [...sets, `${listing.chains.size} chain(s)`].join(', ');
}
