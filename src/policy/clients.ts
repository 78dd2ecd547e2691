/**
 * Which policy a client has: the address that asked (dnstap's query_address, the inline
 * proxy's client) in, a policy out. Pure bookkeeping, fed by Docker's view of the network.
 *
 *   a container's address (its labels)  ─┐
 *   a range of the policy file           ├─▶ the client's policy, in that order
 *   anyone else                         ─┘   (the default policy)
 *
 * An address Docker gives to a new container carries the new container's policy from the
 * moment Docker says so (setContainer), never the old one's. Lookups are once per answer:
 * a container's address is one Map lookup; ranges, longest prefix first, are asked once
 * per address and remembered (up to MAX_CACHED_CLIENTS) until something changes.
 */
import { isIP } from 'node:net';
import { AddressRanges } from '../util/address.js';
import { PolicySet, type Policy } from './policies.js';

/**
 * Client addresses remembered between changes. A container may send from any address of
 * its subnet (2^64 of them in an IPv6 /64) and each answer's client is looked up here: past
 * this many, the memory starts again from nothing rather than growing for ever.
 */
export const MAX_CACHED_CLIENTS = 10_000;

export interface Container {
  id: string;
  name: string;
  /** Its addresses on the filtered network. */
  addresses: readonly string[];
  labels: Readonly<Record<string, string>>;
}

export interface ClientPolicy {
  policy: Policy;
  /** The container at that address, when Docker knows one. */
  container?: { id: string; name: string };
}

export class Clients {
  private readonly containers = new Map<string, Container & { policy: Policy | undefined }>();
  private readonly byAddress = new Map<string, string>();
  private ranges: AddressRanges<Policy>;
  private readonly cache = new Map<string, ClientPolicy>();

  constructor(private policies: PolicySet) {
    this.ranges = rangesOf(policies);
  }

  get policySet(): PolicySet {
    return this.policies;
  }

  /** A new policy file: every container's labels and every range are read again. */
  usePolicies(policies: PolicySet): void {
    this.policies = policies;
    this.ranges = rangesOf(policies);
    for (const container of this.containers.values()) container.policy = policies.forLabels(container.labels, container.id);
    this.cache.clear();
  }

  /** Docker says this container is on the network with these addresses (start, connect, or at start-up). */
  setContainer(container: Container): Policy | undefined {
    this.removeContainer(container.id);
    const policy = this.policies.forLabels(container.labels, container.id);
    this.containers.set(container.id, { ...container, policy });
    for (const address of container.addresses) this.byAddress.set(normal(address), container.id);
    this.cache.clear();
    return policy;
  }

  /** The container left the network (died, disconnected): its addresses fall back to ranges and the default. */
  removeContainer(id: string): void {
    const gone = this.containers.get(id);
    if (!gone) return;
    this.containers.delete(id);
    for (const address of gone.addresses) if (this.byAddress.get(normal(address)) === id) this.byAddress.delete(normal(address));
    this.cache.clear();
  }

  /** The containers Docker reports, to replace what was known (after a reconnect). */
  replaceContainers(containers: readonly Container[]): void {
    for (const id of [...this.containers.keys()]) if (!containers.some((c) => c.id === id)) this.removeContainer(id);
    for (const container of containers) this.setContainer(container);
  }

  forClient(address: string | undefined): ClientPolicy {
    if (address === undefined) return { policy: this.policies.defaultPolicy };
    const key = normal(address);
    let found = this.cache.get(key);
    if (!found) {
      found = this.resolve(key);
      if (this.cache.size >= MAX_CACHED_CLIENTS) this.cache.clear();
      this.cache.set(key, found);
    }
    return found;
  }

  /** Client addresses remembered now (for tests). */
  get cachedCount(): number {
    return this.cache.size;
  }

  /**
   * Every client the kernel must route to a policy of its own: containers with a policy
   * (label or refused), then the file's ranges. The default policy needs no route.
   */
  routes(): Array<{ client: string; policy: Policy }> {
    const exact = [...this.containers.values()].flatMap((c) => (c.policy ? c.addresses.map((client) => ({ client: normal(client), policy: c.policy! })) : []));
    const ranges = this.policies.all.flatMap((policy) => policy.clients.map((client) => ({ client, policy })));
    return [...exact, ...ranges];
  }

  /** The policies in use: the file's, and those of containers' own labels. */
  policiesInUse(): Policy[] {
    const byName = new Map(this.policies.all.map((p) => [p.name, p]));
    for (const container of this.containers.values()) if (container.policy && !byName.has(container.policy.name)) byName.set(container.policy.name, container.policy);
    return [...byName.values()];
  }

  /** What is known of each container, for the admin API. */
  list(): Array<{ id: string; name: string; addresses: readonly string[]; policy: string | undefined; refusal?: string }> {
    return [...this.containers.values()].map((c) => ({
      id: c.id,
      name: c.name,
      addresses: c.addresses,
      policy: c.policy?.name,
      ...(c.policy?.refusal ? { refusal: c.policy.refusal } : {}),
    }));
  }

  private resolve(address: string): ClientPolicy {
    const id = this.byAddress.get(address);
    const container = id === undefined ? undefined : this.containers.get(id);
    const who = container ? { container: { id: container.id, name: container.name } } : {};
    if (container?.policy) return { policy: container.policy, ...who };
    const ranged = this.ranges.find(address)?.value;
    return { policy: ranged ?? this.policies.defaultPolicy, ...who };
  }
}

/** The file's ranges; AddressRanges asks the narrowest first: a narrower range is the more specific claim. */
function rangesOf(policies: PolicySet): AddressRanges<Policy> {
  return new AddressRanges(policies.all.flatMap((policy) => policy.clients.map((cidr) => ({ cidr, value: policy }))));
}

/** IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 client) as plain IPv4. */
function normal(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
