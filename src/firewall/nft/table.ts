/**
 * The one table both address families share: its chains follow the bridge, its subnets
 * and its DNS targets, which the two per-family backends (backend.ts) each know half of.
 * ensure() reads the table and rewrites every chain, in one transaction, when any of them
 * does not read as wanted (missing, flushed, edited, or a bridge left behind); the sets and
 * their elements are never touched by that.
 */
import type { NftRunner } from './runner.js';
import { parseListing, type NftListing } from './listing.js';
import type { PortSpec } from '../rules.js';
import { DEFAULT_POLICY, FAMILY, REFUSING_POLICY, TABLE, chainsFor, renderRoutes, renderTable, rulesFor, type FamilyView, type NftLayout } from './render.js';

export class NftTable {
  private probe: Promise<boolean> | undefined;

  constructor(
    readonly runner: NftRunner,
    private current: NftLayout,
  ) {
    this.usePolicies(current.policies ?? []);
  }

  get layout(): NftLayout {
    return this.current;
  }

  /**
   * The policies (their chains and sets follow at the next ensure()): the default one's
   * ports are the table's own, and the refusing one, where a container whose labels were
   * refused is sent, is always there.
   */
  usePolicies(policies: ReadonlyArray<{ name: string; ports: readonly PortSpec[]; audit?: boolean }>): void {
    const own = policies.find((p) => p.name === DEFAULT_POLICY);
    const others = policies.filter((p) => p.name !== DEFAULT_POLICY).map((p) => ({ name: p.name, ports: p.ports, audit: p.audit ?? false }));
    const refusing = others.some((p) => p.name === REFUSING_POLICY) ? [] : [{ name: REFUSING_POLICY, ports: [], audit: false }];
    this.current = { ...this.current, ...(own ? { ports: own.ports, audit: own.audit ?? false } : {}), policies: [...others, ...refusing] };
  }

  /** Send each client with a policy of its own to that policy's chain: the maps, emptied and filled in one transaction. */
  async route(routes: ReadonlyArray<{ client: string; policy: string }>): Promise<void> {
    await this.runner.apply(renderRoutes(routes));
  }

  /** One family's side of the layout changed (the network was re-created): the chains follow at the next ensure(). */
  update(bridge: string, family: 4 | 6, view: FamilyView): void {
    this.current = { ...this.current, bridge, [family]: view };
  }

  /** The table as it is, rewritten first if its chains are not what the layout wants. */
  async ensure(): Promise<{ listing: NftListing; rebuilt: boolean }> {
    const text = await this.runner.list();
    const listing = parseListing(text ?? '{}');
    if (text !== undefined && this.chainsMatch(listing)) return { listing, rebuilt: false };
    const routes = [...listing.maps].flatMap(([map, elements]) => elements.map((e) => ({ map, ...e })));
    await this.runner.apply(renderTable(this.current, { chains: [...listing.chains.keys()], sets: [...listing.sets.keys()], routes }));
    return { listing, rebuilt: true };
  }

  /** Read the table, counters and all. */
  async read(): Promise<NftListing> {
    return parseListing((await this.runner.list()) ?? '{}');
  }

  /**
   * Does re-adding an element with a longer timeout update it in place (kernels from 6.10
   * or so)? Asked once, of a set made for the question. Where it does not, a refresh
   * deletes and re-adds the element in one transaction: no gap, but its counters restart.
   */
  updatesTimeoutInPlace(): Promise<boolean> {
    this.probe ??= (async () => {
      const set = `${FAMILY} ${TABLE} timeout-probe`;
      await this.runner.apply(
        [`add set ${set} { type ipv4_addr; flags timeout; }`, `add element ${set} { 192.0.2.1 timeout 100s }`, `add element ${set} { 192.0.2.1 timeout 1000s }`].join('\n'),
      );
      const element = (await this.read()).sets.get('timeout-probe')?.elements[0];
      await this.runner.apply(`delete set ${set}\n`);
      return (element?.expires ?? 0) > 100;
    })();
    return this.probe;
  }

  private chainsMatch(listing: NftListing): boolean {
    const wanted = chainsFor(this.current);
    if (listing.chains.size !== wanted.length || !wanted.every((chain) => listing.chains.has(chain))) return false;
    const rules = rulesFor(this.current);
    return wanted.every((chain) => sameList(listing.chains.get(chain)!, rules.filter((r) => r.chain === chain).map((r) => r.comment)));
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
