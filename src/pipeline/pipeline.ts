/**
 * The middle of the pipeline, shared by every source of DNS answers: an answer becomes a
 * decision (the asking client's policy, and the address guard), an allowed decision opens
 * its addresses in the firewall of that policy and their family, and each decision is one
 * log line.
 *
 *   dnstap frame ─────────────┐
 *                             ├─▶ decision ─▶ the policy's Firewall (IPv4) / Firewall (IPv6)
 *   inline DNS proxy answer ──┘
 *
 * The dnstap source hands over a frame and moves on; the inline source also gets a promise
 * that settles when the answer's addresses are in the kernel, and holds the answer until then.
 */
import type { Logger } from 'pino';
import { decide, decideResponse, type Decision, type PolicyLookup } from './decision.js';
import { DecodeError } from '../util/errors.js';
import type { Firewall } from '../firewall/firewall.js';
import type { Producer } from '../framestream/listener.js';
import { LogSummary } from '../util/log-summary.js';
import type { AddressGuard } from '../policy/special-addresses.js';

export interface PipelineStats {
  decisions: Record<Decision['outcome'], number>;
  decodeErrors: number;
  /** Allow decisions per policy and pattern (as given), for the admin API. */
  allowsByPattern: Map<string, Map<string, number>>;
}

/** Where a policy's addresses open: undefined when nothing filters that family (AAAA answers then open nothing). */
export interface Firewalls {
  firewall(policy: string, family: 4 | 6): Firewall | undefined;
}

/** One firewall per family for every policy, as before policies: for tests and benchmarks. */
export function sameFirewalls(firewalls: { 4: Firewall; 6?: Firewall | undefined }): Firewalls {
  return { firewall: (_, family) => firewalls[family] };
}

export interface PipelineOptions {
  /** Is this client on the network? Answers asked by anyone else (the host) are said once each. */
  onNetwork?: (client: string) => boolean;
  /** Every answer that named addresses, allowed or denied (the blocked view keeps them to name what is blocked). */
  onAnswer?: (client: string | undefined, name: string, addresses: readonly string[], allowed: boolean) => void;
}

export interface Opened {
  decision: Decision;
  /** True once every address the decision opens is in the kernel; false if one never will be. */
  inKernel: Promise<boolean>;
}

/** A host has few addresses; past this many, something else is going on and one more line would not help. */
const MAX_HOST_CLIENTS = 64;

export class Pipeline {
  readonly stats: PipelineStats = { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0, allowsByPattern: new Map() };
  private warnedNotFull = false;
  // A producer gone mad can send thousands of bad frames a second: a few lines, then a summary.
  private readonly skippedFrame: LogSummary;
  private readonly unreadableAnswer: LogSummary;

  private readonly hostClients = new Set<string>();

  constructor(
    private readonly policies: PolicyLookup,
    private guard: AddressGuard,
    private readonly firewalls: Firewalls,
    private readonly log: Logger,
    private readonly options: PipelineOptions = {},
  ) {
    this.skippedFrame = new LogSummary(log, 'skipped a dnstap frame', { burst: 10 });
    this.unreadableAnswer = new LogSummary(log, 'upstream answer not understood', { burst: 10 });
  }

  /** The network was re-created, perhaps on other subnets: refuse those from now on. */
  useGuard(guard: AddressGuard): void {
    this.guard = guard;
  }

  /** Log the warnings held back, at shutdown. */
  flush(): void {
    this.skippedFrame.flush();
    this.unreadableAnswer.flush();
  }

  /** A dnstap data frame: decide and open; bad bytes are counted, logged and skipped. */
  readonly onFrame = (payload: Buffer, producer: Producer): void => {
    const decision = this.attempt(() => decide(payload, this.policies, this.guard, this.options.onAnswer !== undefined), { producer: producer.id }, this.skippedFrame);
    if (decision) this.act(decision, false);
  };

  /**
   * A response the inline DNS proxy is about to send to `client`. Undefined for bytes that
   * are not a DNS response (counted and logged; the proxy passes them on untouched).
   */
  onResponse(response: Uint8Array, client: string, signal?: AbortSignal): Opened | undefined {
    const decision = this.attempt(() => decideResponse(response, client, this.policies, this.guard, this.options.onAnswer !== undefined), { client }, this.unreadableAnswer);
    if (!decision) return undefined;
    const opening = this.act(decision, signal ?? true);
    return { decision, inKernel: Promise.all(opening).then((all) => all.every(Boolean)) };
  }

  /**
   * A question not yet asked upstream (inline mode with --deny-nxdomain): does a pattern
   * allow its name (or is the client's policy in audit mode)? A denied name is counted and
   * logged here, as its answer would have been.
   */
  admits(name: string, client: string): boolean {
    const { policy } = this.policies.forClient(client);
    // Audit mode blocks nothing, NXDOMAIN included: the answer is asked for, and judged when it comes.
    if (policy.patterns.match(name) || policy.audit) return true;
    this.stats.decisions.deny++;
    this.log.info({ name, client, policy: policy.name }, 'deny');
    return false;
  }

  private attempt(decideIt: () => Decision, context: Record<string, unknown>, warning: LogSummary): Decision | undefined {
    try {
      return decideIt();
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      this.stats.decodeErrors++;
      warning.warn({ ...context, reason: err.message, decodeErrors: this.stats.decodeErrors });
      return undefined;
    }
  }

  /**
   * Count, log and open; with `track` (a source that waits, the inline proxy), returns when
   * each address of an allowed answer reaches the kernel, or false once `track` (a signal)
   * aborts. dnstap does not wait: no promise per address.
   */
  private act(decision: Decision, track: boolean | AbortSignal): Promise<boolean>[] {
    this.stats.decisions[decision.outcome]++;
    if (decision.client !== undefined) this.noteHost(decision.client);
    switch (decision.outcome) {
      case 'allow':
        return this.open(decision, track);
      case 'deny':
        this.log.info({ name: decision.name, client: decision.client, policy: decision.policy }, 'deny');
        if (decision.addresses?.length) this.options.onAnswer?.(decision.client, decision.name, decision.addresses, false);
        return [];
      case 'skip':
        this.skip(decision);
        return [];
    }
  }

  private open(decision: Extract<Decision, { outcome: 'allow' }>, track: boolean | AbortSignal): Promise<boolean>[] {
    if (this.options.onAnswer) {
      const all = [...decision.ipv4, ...decision.ipv6].map((r) => r.address);
      this.options.onAnswer(decision.client, decision.name, [...all, ...decision.refused.map((r) => r.address)], true);
    }
    let hits = this.stats.allowsByPattern.get(decision.policy);
    if (!hits) this.stats.allowsByPattern.set(decision.policy, (hits = new Map()));
    hits.set(decision.pattern, (hits.get(decision.pattern) ?? 0) + 1);
    for (const { address, why } of decision.refused) {
      this.log.warn(
        { name: decision.name, client: decision.client, address, why },
        'refused to open a special-purpose address; open it on purpose with --allow-cidr',
      );
    }
    const added: string[] = [];
    const opening: Promise<boolean>[] = [];
    for (const [family, records] of [[4, decision.ipv4], [6, decision.ipv6]] as const) {
      const firewall = this.firewalls.firewall(decision.policy, family);
      if (!firewall) continue;
      for (const { address, ttl } of records) {
        if (firewall.allow(address, decision.name, ttl, decision.client, decision.pattern) === 'queued') added.push(address);
        if (track) opening.push(firewall.whenInKernel(address, track === true ? undefined : track));
      }
    }
    if (added.length === 0 && !this.log.isLevelEnabled('debug')) return opening; // a repeat answer: nothing to say
    const ips = [...decision.ipv4, ...decision.ipv6].map((r) => r.address);
    const fields = { name: decision.name, client: decision.client, policy: decision.policy, pattern: decision.pattern, ips };
    if (added.length > 0) this.log.info({ ...fields, added }, 'allow');
    else this.log.debug(fields, 'allow (already open)');
    return opening;
  }

  /**
   * An answer asked by the host, not a container: Docker's embedded DNS forwards from the
   * host's namespace unless containers get --dns, and then every answer looks like the
   * host's, which defeats a policy per container. Said once per such client.
   */
  private noteHost(client: string): void {
    if (!this.options.onNetwork || this.options.onNetwork(client) || this.hostClients.has(client) || this.hostClients.size >= MAX_HOST_CLIENTS) return;
    this.hostClients.add(client);
    this.log.warn(
      { client },
      `answers for ${client} were asked by the host, not a container on the network: give containers --dns=<the gateway> so that each asks as itself (a policy per container needs it)`,
    );
  }

  private skip(decision: Extract<Decision, { outcome: 'skip' }>): void {
    if (this.log.isLevelEnabled('trace')) {
      this.log.trace({ reason: decision.reason, name: decision.name, rcode: decision.rcode, client: decision.client }, 'skip');
    }
    if (decision.reason === 'no-response-message' && !this.warnedNotFull) {
      this.warnedNotFull = true;
      this.log.warn(
        'dnstap CLIENT_RESPONSE carries no response message: add "full" to the dnstap line of the Corefile ' +
          '(dnstap unix:///run/on-his-name/dnstap.sock full), or enable client response logging in your DNS server',
      );
    }
  }
}
