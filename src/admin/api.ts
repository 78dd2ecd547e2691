/**
 * What the admin API says, as plain objects: the open addresses with their kernel
 * counters, policy and container, the policies with their clients and last reload, the
 * patterns with their hits, and whether the daemon is healthy. The HTTP side (server.ts)
 * only serialises these; `on-his-name status` reads them back.
 */
import { stat } from 'node:fs/promises';
import type { Counters } from '../firewall/backend.js';
import type { Firewall } from '../firewall/firewall.js';
import type { PipelineStats } from '../pipeline/pipeline.js';
import type { Clients } from '../policy/clients.js';
import { suggest, type Suggestion } from '../blocked/suggest.js';
import type { BlockedView } from '../blocked/view.js';
import type { Family, MetricsSources } from './metrics.js';

export interface ApiSources extends MetricsSources {
  /** The policies as they are now, with their clients and the last reload. */
  policies: () => PoliciesView;
  /** The blocked view, when it is on. */
  blocked?: BlockedView;
  /** The container Docker knows at an address, if any, and the policy that address has now. */
  containerAt?: (address: string) => { id: string; name: string; policy: string } | undefined;
  /** The dnstap Unix socket, if there is one: producers cannot connect once it is gone. */
  socketPath?: string;
  /** Wall-clock milliseconds; injectable for tests. */
  now?: () => number;
}

export interface AcceptedAddress {
  address: string;
  family: Family;
  name: string | null;
  /** The policy whose set or chain holds it. */
  policy: string;
  /** The container address that last asked, since this run started. */
  client: string | null;
  /**
   * The container at that address, where Docker knows it and it has this policy: a
   * container that took the address since, under another policy, did not ask.
   */
  container: string | null;
  expiresAt: string | null;
  expiresInSeconds: number | null;
  /** What met the accept rule (or set): the first packet of each new connection. Null when unreadable. */
  packets: number | null;
  bytes: number | null;
}

export interface AcceptedView {
  now: string;
  addresses: AcceptedAddress[];
  /** Why the counters are missing, when the kernel could not be read. */
  countersError?: string;
}

export interface MatchersView {
  matchers: Array<{ policy: string; pattern: string; allows: number }>;
  decisions: PipelineStats['decisions'];
}

export interface PolicyView {
  name: string;
  origin: 'default' | 'file' | 'label' | 'refused';
  /** Audit mode: what it would block is recorded and let through. */
  audit: boolean;
  patterns: string[];
  ports: string[];
  /** Ranges of the policy file. */
  clients: string[];
  /** Containers that have it, by their labels. */
  containers: Array<{ id: string; name: string; addresses: readonly string[]; refusal?: string }>;
}

export interface PoliciesView {
  file: string | null;
  policies: PolicyView[];
  /** The last reload: when, why, and how it went. */
  reload: { at: string; ok: boolean; why: string; error?: string } | null;
}

export interface HealthView {
  status: 'ok' | 'unhealthy';
  reasons: string[];
  /** enforcing; audit when every policy only records; mixed when some do. */
  mode: 'enforcing' | 'audit' | 'mixed';
  /** What an operator must know though nothing is broken: audit mode, above all. */
  warnings: string[];
  addresses: number;
  waiting: number;
}

/** Applies failing in a row before we call it unhealthy: three is about a second of retries with backoff. */
export const UNHEALTHY_AFTER_FAILURES = 3;

export async function acceptedView(sources: ApiSources): Promise<AcceptedView> {
  const nowMs = (sources.now ?? Date.now)();
  const addresses: AcceptedAddress[] = [];
  const errors: string[] = [];
  for (const { family, firewall, policy } of sources.firewalls()) {
    const counters = await firewall.counters().catch((err: Error) => {
      errors.push(`IPv${family} (${policy.name}): ${err.message}`);
      return undefined;
    });
    for (const entry of firewall.entries()) {
      const count: Counters | undefined = counters?.get(entry.address);
      const client = firewall.clientOf(entry.address);
      const there = client !== undefined ? sources.containerAt?.(client) : undefined;
      addresses.push({
        address: entry.address,
        family,
        name: entry.name ?? null,
        policy: policy.name,
        client: client ?? null,
        container: there?.policy === policy.name ? there.name : null,
        expiresAt: entry.expiresAt === undefined ? null : new Date(entry.expiresAt * 1000).toISOString(),
        expiresInSeconds: entry.expiresAt === undefined ? null : Math.max(0, Math.round(entry.expiresAt - nowMs / 1000)),
        packets: count?.packets ?? null,
        bytes: count?.bytes ?? null,
      });
    }
  }
  addresses.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.family - b.family || a.address.localeCompare(b.address));
  return { now: new Date(nowMs).toISOString(), addresses, ...(errors.length ? { countersError: errors.join('; ') } : {}) };
}

export function matchersView(sources: ApiSources): MatchersView {
  const hits = sources.pipeline.allowsByPattern;
  return {
    matchers: sources.policies().policies.flatMap((p) => p.patterns.map((pattern) => ({ policy: p.name, pattern, allows: hits.get(p.name)?.get(pattern) ?? 0 }))),
    decisions: { ...sources.pipeline.decisions },
  };
}

/** The policies in use, each with its patterns, ports, ranges and containers. */
export function policiesView(clients: Clients, file: string | undefined, reload: PoliciesView['reload']): PoliciesView {
  const containers = clients.list();
  return {
    file: file ?? null,
    policies: clients.policiesInUse().map((policy) => ({
      name: policy.name,
      origin: policy.origin,
      audit: policy.audit,
      patterns: policy.patterns.patterns.map((p) => p.source),
      ports: policy.ports.map((p) => `${p.protocol}/${p.port}`),
      clients: [...policy.clients],
      containers: containers
        .filter((c) => c.policy === policy.name)
        .map((c) => ({ id: c.id, name: c.name, addresses: c.addresses, ...(c.refusal ? { refusal: c.refusal } : {}) })),
    })),
    reload,
  };
}

/** Healthy: the dnstap socket is there to connect to, no firewall keeps failing to apply, and nothing lets traffic past our rules. */
export async function healthView(sources: ApiSources): Promise<HealthView> {
  const reasons: string[] = [];
  const socket = sources.socketPath === undefined ? undefined : await stat(sources.socketPath).catch(() => undefined);
  if (sources.socketPath !== undefined && !socket?.isSocket()) {
    reasons.push(`the dnstap socket ${sources.socketPath} is gone, so no DNS server can connect: restart on-his-name`);
  }
  const firewalls = sources.firewalls();
  for (const { family, firewall, policy } of firewalls) {
    const failing = firewall.stats.failingApplies;
    const which = policy.name === 'default' ? `the IPv${family} firewall` : `the IPv${family} firewall of policy ${policy.name}`;
    if (failing >= UNHEALTHY_AFTER_FAILURES) reasons.push(`${which} failed its last ${failing} kernel changes and keeps retrying (see the log)`);
    // Rules the kernel holds but no packet meets (no FORWARD jump, someone's ACCEPT above ours): the log says it once, health says it until fixed.
    for (const bypass of firewall.bypasses) {
      const reason = `IPv${family} egress is NOT filtered: ${bypass}`;
      if (!reasons.includes(reason)) reasons.push(reason);
    }
  }
  const sum = (read: (f: Firewall) => number) => firewalls.reduce((n, { firewall }) => n + read(firewall), 0);
  const addresses = sum((f) => f.allowedCount);
  const policies = sources.policies().policies;
  const auditing = policies.filter((p) => p.audit).map((p) => p.name);
  const mode = auditing.length === 0 ? 'enforcing' : auditing.length === policies.length ? 'audit' : 'mixed';
  const warnings = auditing.length ? [auditWarning(auditing)] : [];
  return { status: reasons.length ? 'unhealthy' : 'ok', reasons, mode, warnings, addresses, waiting: Math.max(0, sum((f) => f.trackedCount) - addresses) };
}

/** The one sentence every view gives while a policy blocks nothing. */
export function auditWarning(policies: readonly string[]): string {
  return `AUDIT MODE: nothing is blocked for the clients of ${policies.length === 1 ? 'policy' : 'policies'} ${policies.join(', ')}; what would be is recorded (on-his-name status, /api/blocked)`;
}

export interface BlockedAttemptView {
  client: string;
  container: string | null;
  policy: string;
  /** True when the policy is in audit mode: the attempt went through. */
  audit: boolean;
  address: string;
  protocol: 'tcp' | 'udp';
  port: number;
  /** The latest answer to this client (or, failing that, to anyone) that carried the address; null: a hard-coded address. */
  name: string | null;
  /** Whether the client's policy allowed that name: false is a name to consider, true means the port or the lifetime stopped it. */
  nameAllowed: boolean | null;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

export interface BlockedListView {
  /** False when nothing records (--blocked-interval 0, or no ipset for the iptables backend). */
  enabled: boolean;
  /** Distinct destinations held, most recent first; the view keeps at most `bound`. */
  blocked: BlockedAttemptView[];
  bound: number;
}

export function blockedView(sources: ApiSources, limit = Infinity): BlockedListView {
  const view = sources.blocked;
  if (!view) return { enabled: false, blocked: [], bound: 0 };
  return {
    enabled: true,
    bound: view.bound,
    blocked: view
      .list()
      .slice(0, limit)
      .map((e) => ({
        client: e.client,
        container: e.container ?? null,
        policy: e.policy,
        audit: e.audit,
        address: e.address,
        protocol: e.protocol,
        port: e.port,
        name: e.answer?.name ?? null,
        nameAllowed: e.answer?.allowed ?? null,
        count: e.count,
        firstSeen: new Date(e.firstSeen).toISOString(),
        lastSeen: new Date(e.lastSeen).toISOString(),
      })),
  };
}

export interface SuggestionsView {
  enabled: boolean;
  suggestions: Suggestion[];
}

export function suggestionsView(sources: ApiSources): SuggestionsView {
  if (!sources.blocked) return { enabled: false, suggestions: [] };
  return { enabled: true, suggestions: suggest(sources.blocked.list(), sources.policies().policies) };
}
