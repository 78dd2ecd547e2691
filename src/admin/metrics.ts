/**
 * Prometheus metrics, in a registry of our own. Nothing on the hot path counts twice:
 * at each scrape, collect() reads the stats the pipeline keeps anyway (the listener's,
 * the decisions', each firewall's). The one thing those stats cannot give, the spread of
 * times from an answer to its rules being in the kernel, is a histogram fed by the
 * firewall's onInKernel hook.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DnsProxyStats } from '../dns-proxy/server.js';
import type { HoldStats } from '../pipeline/hold.js';
import type { Firewall, FirewallStats } from '../firewall/firewall.js';
import type { FrameStreamStats } from '../framestream/connection.js';
import type { PipelineStats } from '../pipeline/pipeline.js';

export type Family = 4 | 6;

export interface MetricsSources {
  pipeline: PipelineStats;
  /** Every dnstap listener and dialer, counted together. */
  dnstap: Readonly<FrameStreamStats>;
  /** Every policy's firewall of every family, as they are now (policies come and go with reloads and containers). */
  firewalls: () => ReadonlyArray<{ family: Family; firewall: Firewall; policy: { name: string } }>;
  /** Inline mode's proxy and hold, when --dns-listen is given. */
  dns?: { proxy: { readonly stats: Readonly<DnsProxyStats> }; hold: Readonly<HoldStats> };
  /** What the kernel recorded as blocked, when the blocked view is on. */
  blocked?: { readonly size: number; readonly packetsByPolicy: ReadonlyMap<string, number> };
}

const PREFIX = 'on_his_name_';
/** From half a millisecond (ipset) through iptables-restore's ~10 ms to a retried apply's seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
type Reading = ReadonlyArray<readonly [Labels, number]>;

export class Metrics {
  readonly registry = new Registry();
  private readonly latency: Histogram<'family'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.latency = new Histogram({
      name: `${PREFIX}rule_latency_seconds`,
      help: 'Time from a DNS answer being decoded to its address being open in the kernel',
      labelNames: ['family'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
  }

  /** FirewallOptions.onInKernel for the firewall of one address family. */
  inKernelHook(family: Family): (latencyMs: number, count: number) => void {
    const child = this.latency.labels({ family: String(family) });
    return (latencyMs, count) => {
      for (let i = 0; i < count; i++) child.observe(latencyMs / 1000);
    };
  }

  /** Expose what the daemon counts; read at each scrape. */
  watch(sources: MetricsSources): void {
    const { pipeline, dnstap, firewalls, dns } = sources;
    const one = (value: number): Reading => [[{}, value]];
    const counter = (name: string, help: string, read: () => Reading, labelNames: string[] = []) => this.counter(name, help, labelNames, read);
    counter('dnstap_frames_total', 'dnstap data frames received', () => one(dnstap.dataFrames));
    counter('dnstap_connections_total', 'dnstap producer connections accepted or dialled', () => one(dnstap.connections));
    counter('dnstap_oversized_frames_total', 'dnstap frames skipped for being too large', () => one(dnstap.oversizedFrames));
    counter('dnstap_protocol_errors_total', 'dnstap connections closed for breaking the Frame Streams protocol', () => one(dnstap.protocolErrors));
    counter('decode_errors_total', 'dnstap frames skipped because their dnstap or DNS bytes could not be decoded', () => one(pipeline.decodeErrors));
    counter('decisions_total', 'Decisions on client responses, by outcome', () =>
      Object.entries(pipeline.decisions).map(([outcome, n]) => [{ outcome }, n] as const), ['outcome'],
    );
    counter('pattern_allows_total', 'Allow decisions, by the policy and the pattern that matched', () =>
      [...pipeline.allowsByPattern].flatMap(([policy, hits]) => [...hits].map(([pattern, n]) => [{ policy, pattern }, n] as const)), ['policy', 'pattern'],
    );

    const perFamily = (read: (firewall: Firewall) => number): Reading =>
      firewalls().map(({ family, firewall, policy }) => [{ family: String(family), policy: policy.name }, read(firewall)] as const);
    const stat = (name: string, help: string, key: keyof FirewallStats) => counter(name, help, () => perFamily((f) => f.stats[key]), ['family', 'policy']);
    this.gauge('addresses_installed', 'Addresses open in the kernel, by family and policy', () => perFamily((f) => f.allowedCount));
    this.gauge('addresses_tracked', 'Addresses wanted open (in the kernel or waiting for it), by family and policy', () => perFamily((f) => f.trackedCount));
    stat('addresses_opened_total', 'Addresses opened in the kernel', 'addressesAllowed');
    stat('addresses_refreshed_total', 'Rule rewrites that pushed an open address’s expiry later', 'refreshes');
    stat('addresses_expired_total', 'Addresses closed because their lifetime ran out', 'expired');
    stat('addresses_evicted_total', 'Addresses closed early to stay within --max-ips', 'evicted');
    stat('addresses_evicted_for_name_total', 'Addresses closed early to stay within --max-ips-per-name', 'evictedForName');
    stat('restores_total', 'Reads of the kernel that found our rules missing or damaged and restored them', 'restored');
    stat('applies_total', 'Kernel transactions (iptables-restore or ipset batches) that succeeded', 'applies');
    stat('apply_failures_total', 'Kernel transactions that failed and were retried', 'applyFailures');
    this.gauge('queue_peak_pending', 'The most addresses ever waiting for the kernel at once (the queue’s high-water mark), by family and policy', () =>
      perFamily((f) => f.stats.peakPending),
    );
    stat('queue_dropped_total', 'Addresses not opened because the firewall queue was full', 'droppedFromQueue');
    if (dns) this.watchInlineDns(dns);
    const { blocked } = sources;
    if (blocked) {
      counter('blocked_packets_total', 'Packets the last rule blocked (or, in audit mode, would have), by the policy of the client, as the kernel recorded them', () =>
        [...blocked.packetsByPolicy].map(([policy, n]) => [{ policy }, n] as const), ['policy'],
      );
      this.gauge('blocked_destinations', 'Distinct (client, destination, port) in the blocked view now (bounded)', () => one(blocked.size), []);
    }
  }

  /** Inline mode: what the proxy answered and how its hold on allowed answers went. */
  private watchInlineDns({ proxy, hold }: NonNullable<MetricsSources['dns']>): void {
    const one = (value: number): Reading => [[{}, value]];
    this.counter('dns_queries_total', 'DNS queries received in inline mode, by transport', ['transport'], () =>
      Object.entries(proxy.stats.queries).map(([transport, n]) => [{ transport }, n] as const),
    );
    this.counter('dns_malformed_queries_total', 'DNS queries answered FORMERR or NOTIMP, or dropped', [], () => one(proxy.stats.malformed));
    this.counter('dns_upstream_failures_total', 'DNS queries answered SERVFAIL because the upstream did not answer', [], () => one(proxy.stats.upstreamFailures));
    this.counter('dns_truncated_total', 'DNS replies sent truncated (TC) for the client to ask over TCP', [], () => one(proxy.stats.truncated));
    this.counter('dns_held_answers_total', 'Allowed answers held until their rules were in the kernel', [], () => one(hold.held));
    this.counter('dns_released_early_total', 'Allowed answers released when --dns-hold-ms ran out before their rules were in', [], () => one(hold.releasedEarly));
    this.counter('dns_nxdomain_total', 'Denied names answered NXDOMAIN without asking upstream (--deny-nxdomain)', [], () => one(hold.nxdomain));
    this.counter('dns_overloaded_total', 'DNS queries answered SERVFAIL because the client (or everyone) had too many waiting', [], () => one(proxy.stats.overloaded));
    this.counter('dns_refused_total', 'DNS datagrams and connections ignored: not from a client of the network, or from a reflection port', [], () => one(proxy.stats.refused));
    this.counter('dns_mismatched_replies_total', 'Upstream replies that answered no query of ours (wrong ID or question): stray, or forged', [], () => one(proxy.stats.mismatchedReplies));
  }

  private counter(name: string, help: string, labelNames: string[], read: () => Reading): void {
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  }

  private gauge(name: string, help: string, read: () => Reading, labelNames: string[] = ['family', 'policy']): void {
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }
}
