/**
 * The answers seen lately, by the client that asked and each address they carried, so that
 * a blocked connection can be named: "this container looked up tracker.example.com (denied)
 * and then tried its address". Denied answers count as much as allowed ones: they are the
 * ones an allow list is missing. Bounded: the least recently answered go first.
 */
export interface Answered {
  name: string;
  /** Did the client's policy allow the name? */
  allowed: boolean;
  /** The client that got the answer; differs from the blocked client when only another one's answer named the address. */
  client: string | undefined;
  at: number;
}

/** About 160 bytes an entry, two maps: some 16 MB at the bound. */
export const MAX_ANSWERS = 50_000;

export class RecentAnswers {
  private readonly byClient = new Map<string, Answered>();
  private readonly byAddress = new Map<string, Answered>();

  constructor(private readonly max = MAX_ANSWERS) {}

  get size(): number {
    return this.byClient.size;
  }

  record(client: string | undefined, name: string, addresses: readonly string[], allowed: boolean, now: number): void {
    const answered: Answered = { name, allowed, client, at: now };
    for (const address of addresses) {
      touch(this.byClient, `${client ?? '-'} ${address}`, answered, this.max);
      touch(this.byAddress, address, answered, this.max);
    }
  }

  /** The latest answer to `client` carrying `address`; else the latest to anyone (the host asking for every container, without --dns). */
  nameFor(client: string, address: string): Answered | undefined {
    return this.byClient.get(`${client} ${address}`) ?? this.byAddress.get(address);
  }
}

/** Set as the most recent, dropping the least recent past `max` (a Map keeps insertion order). */
function touch<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}
