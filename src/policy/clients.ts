/**
 * Which policy a client has: the address that asked (dnstap's query_address, the inline
 * proxy's client) in, a policy out. Pure bookkeeping, fed by Docker's view of the network.
 *
 *   a container's address (its labels)  ─┐
 *   a range of the policy file           ├─▶ the client's policy, in that order
 *   anyone else                         ─┘   (the default policy)
 *
 * An address Docker gives to a new container carries the new container's policy from the
 * moment Docker says so (setContainer), never the old one's; decisions follow once the
 * kernel is ready for it (decisions, snapshot). What changes (a container new, or with a
 * new policy) is returned, for the log. Lookups are once per answer:
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

/** A container Docker has just told us of, or whose policy a reload changed, and the policy it has now. */
export interface PolicyChange {
  container: Container;
  /** Undefined for a container without labels: its address's range of the file, or the default policy. */
  policy: Policy | undefined;
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

  /** A new policy file: every container's labels and every range are read again. Returns the containers whose policy changed. */
  usePolicies(policies: PolicySet): PolicyChange[] {
    this.policies = policies;
    this.ranges = rangesOf(policies);
    const changes: PolicyChange[] = [];
    for (const known of this.containers.values()) {
      const before = known.policy;
      known.policy = policies.forLabels(known.labels, known.id);
      if (!samePolicy(before, known.policy)) changes.push({ container: withoutPolicy(known), policy: known.policy });
    }
    this.cache.clear();
    return changes;
  }

  /**
   * What decisions read: the state as of the last snapshot made effective, or this one
   * until there is one. A change is made here first and decided on only once the kernel
   * has the firewalls of its policies (daemon/policy-firewalls.ts update()); before that,
   * an answer naming a policy with no firewall would open nothing, and silently.
   */
  readonly decisions: { forClient(address: string | undefined): ClientPolicy } = {
    forClient: (address) => (this.decided ?? this).forClient(address),
  };
  private decided: Clients | undefined;

  /** The state as it is now; calling the result makes it what decisions read. */
  snapshot(): () => void {
    const copy = new Clients(this.policies);
    for (const [id, known] of this.containers) copy.containers.set(id, { ...known });
    for (const [address, id] of this.byAddress) copy.byAddress.set(address, id);
    return () => {
      this.decided = copy;
    };
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

  /** The containers Docker reports, to replace what was known. Returns those that are new, or have a new policy or address. */
  replaceContainers(containers: readonly Container[]): PolicyChange[] {
    for (const id of [...this.containers.keys()]) if (!containers.some((c) => c.id === id)) this.removeContainer(id);
    const changes: PolicyChange[] = [];
    for (const container of containers) {
      const before = this.containers.get(container.id);
      const policy = this.setContainer(container);
      if (!before || !samePolicy(before.policy, policy) || before.addresses.join() !== container.addresses.join()) changes.push({ container, policy });
    }
    return changes;
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

/**
 * The log line for a change: a container with a policy of its own says which; one refused
 * says why it opens nothing (a typo in a label must be seen); one without labels is only
 * worth a debug line.
 */
export function describeChange({ container, policy }: PolicyChange): { level: 'debug' | 'info' | 'warn'; fields: Record<string, unknown>; msg: string } {
  const fields = { container: container.name, id: container.id.slice(0, 12), addresses: container.addresses, policy: policy?.name ?? null };
  if (policy?.refusal) return { level: 'warn', fields, msg: `container ${container.name} opens nothing: ${policy.refusal}` };
  if (policy) return { level: 'info', fields, msg: `container ${container.name} has policy ${policy.name}` };
  return { level: 'debug', fields, msg: `container ${container.name} has no policy label: its address's range of the policy file, or the default policy` };
}

function samePolicy(a: Policy | undefined, b: Policy | undefined): boolean {
  return a?.name === b?.name && a?.refusal === b?.refusal;
}

function withoutPolicy({ id, name, addresses, labels }: Container): Container {
  return { id, name, addresses, labels };
}

/** The file's ranges; AddressRanges asks the narrowest first: a narrower range is the more specific claim. */
function rangesOf(policies: PolicySet): AddressRanges<Policy> {
  return new AddressRanges(policies.all.flatMap((policy) => policy.clients.map((cidr) => ({ cidr, value: policy }))));
}

/** IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 client) as plain IPv4. */
function normal(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
