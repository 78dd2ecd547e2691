/**
 * What the admin API says, as plain objects: the open addresses with their kernel
 * counters, the patterns with their hits, and whether the daemon is healthy. The HTTP
 * side (server.ts) only serialises these; `on-his-name status` reads them back.
 */
import { stat } from 'node:fs/promises';
import type { Counters } from '../firewall/backend.js';
import type { Firewall } from '../firewall/firewall.js';
import type { PipelineStats } from '../pipeline/pipeline.js';
import type { Family, MetricsSources } from './metrics.js';

export interface ApiSources extends MetricsSources {
  /** The patterns as the operator gave them, in order. */
  patterns: readonly string[];
  /** The dnstap Unix socket, if there is one: producers cannot connect once it is gone. */
  socketPath?: string;
  /** Wall-clock milliseconds; injectable for tests. */
  now?: () => number;
}

export interface AcceptedAddress {
  address: string;
  family: Family;
  name: string | null;
  /** The container address that last asked, since this run started. */
  client: string | null;
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
  matchers: Array<{ pattern: string; allows: number }>;
  decisions: PipelineStats['decisions'];
}

export interface HealthView {
  status: 'ok' | 'unhealthy';
  reasons: string[];
  addresses: number;
  waiting: number;
}

/** Applies failing in a row before we call it unhealthy: three is about a second of retries with backoff. */
export const UNHEALTHY_AFTER_FAILURES = 3;

export async function acceptedView(sources: ApiSources): Promise<AcceptedView> {
  const nowMs = (sources.now ?? Date.now)();
  const addresses: AcceptedAddress[] = [];
  const errors: string[] = [];
  for (const { family, firewall } of sources.firewalls) {
    const counters = await firewall.counters().catch((err: Error) => {
      errors.push(`IPv${family}: ${err.message}`);
      return undefined;
    });
    for (const entry of firewall.entries()) {
      const count: Counters | undefined = counters?.get(entry.address);
      addresses.push({
        address: entry.address,
        family,
        name: entry.name ?? null,
        client: firewall.clientOf(entry.address) ?? null,
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
    matchers: sources.patterns.map((pattern) => ({ pattern, allows: hits.get(pattern) ?? 0 })),
    decisions: { ...sources.pipeline.decisions },
  };
}

/** Healthy: the dnstap socket is there to connect to, no firewall keeps failing to apply, and nothing lets traffic past our rules. */
export async function healthView(sources: ApiSources): Promise<HealthView> {
  const reasons: string[] = [];
  const socket = sources.socketPath === undefined ? undefined : await stat(sources.socketPath).catch(() => undefined);
  if (sources.socketPath !== undefined && !socket?.isSocket()) {
    reasons.push(`the dnstap socket ${sources.socketPath} is gone, so no DNS server can connect: restart on-his-name`);
  }
  for (const { family, firewall } of sources.firewalls) {
    const failing = firewall.stats.failingApplies;
    if (failing >= UNHEALTHY_AFTER_FAILURES) {
      reasons.push(`the IPv${family} firewall failed its last ${failing} kernel changes and keeps retrying (see the log)`);
    }
    // Rules the kernel holds but no packet meets (no FORWARD jump, someone's ACCEPT above ours): the log says it once, health says it until fixed.
    for (const bypass of firewall.bypasses) reasons.push(`IPv${family} egress is NOT filtered: ${bypass}`);
  }
  const sum = (read: (f: Firewall) => number) => sources.firewalls.reduce((n, { firewall }) => n + read(firewall), 0);
  const addresses = sum((f) => f.allowedCount);
  return { status: reasons.length ? 'unhealthy' : 'ok', reasons, addresses, waiting: Math.max(0, sum((f) => f.trackedCount) - addresses) };
}
