/**
 * The documentation against the code: docs/operations.md lists every metric the code
 * registers, with its type and labels (and none the code does not), and every relative link
 * of README.md and docs/ leads to a file that exists, and to a heading that exists in it.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Histogram } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics, type MetricsSources } from '../../src/admin/metrics.js';
import { newProxyStats } from '../../src/dns-proxy/server.js';
import type { HoldStats } from '../../src/pipeline/hold.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OPERATIONS = join(ROOT, 'docs/operations.md');
const PREFIX = 'on_his_name_';

/** Every source a metric can be registered for: inline mode and the blocked view included. */
function everySource(): MetricsSources {
  const hold: HoldStats = { held: 0, releasedEarly: 0, notOpened: 0, nxdomain: 0, lastHoldMs: 0, maxHoldMs: 0 };
  return {
    pipeline: { decisions: { allow: 0, deny: 0, skip: 0 }, decodeErrors: 0, allowsByPattern: new Map() },
    dnstap: { connections: 0, dataFrames: 0, oversizedFrames: 0, protocolErrors: 0 },
    firewalls: () => [],
    dns: { proxy: { stats: newProxyStats() }, hold },
    blocked: { size: 0, packetsByPolicy: new Map() },
  };
}

interface Registered {
  name: string;
  type: string;
  labels: string[];
}

function registered(): Registered[] {
  const metrics = new Metrics();
  metrics.watch(everySource());
  const type = (m: unknown) => (m instanceof Histogram ? 'histogram' : m instanceof Counter ? 'counter' : m instanceof Gauge ? 'gauge' : 'unknown');
  return metrics.registry
    .getMetricsAsArray()
    .map((m) => m as unknown as { name: string; labelNames?: readonly string[] })
    .filter((m) => m.name.startsWith(PREFIX))
    .map((m) => ({ name: m.name, type: type(m), labels: [...(m.labelNames ?? [])].sort() }));
}

/** The rows of the reference table: | `name` | type | `label`, `label` | meaning |. */
function documented(): Map<string, { type: string; labels: string[] }> {
  const rows = new Map<string, { type: string; labels: string[] }>();
  for (const line of readFileSync(OPERATIONS, 'utf8').split('\n')) {
    const match = /^\| `(on_his_name_[a-z0-9_]+)` \| ([a-z]+) \|([^|]*)\|/.exec(line);
    if (!match) continue;
    const labels = [...match[3]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).sort();
    rows.set(match[1]!, { type: match[2]!, labels });
  }
  return rows;
}

describe('docs/operations.md, the metrics reference', () => {
  const code = registered();
  const docs = documented();

  it('the code registers metrics (the fake sources reach every one of them)', () => {
    expect(code.length).toBeGreaterThan(25);
    expect(code.map((m) => m.name)).toEqual(expect.arrayContaining([`${PREFIX}dns_queries_total`, `${PREFIX}blocked_destinations`, `${PREFIX}rule_latency_seconds`]));
  });

  it.each(code.map((m) => [m.name, m] as const))('documents %s with its type and labels', (_, metric) => {
    const row = docs.get(metric.name);
    expect(row, `${metric.name} is missing from the table in docs/operations.md`).toBeDefined();
    expect(row).toEqual({ type: metric.type, labels: metric.labels });
  });

  it('documents no metric the code does not register', () => {
    const names = new Set(code.map((m) => m.name));
    expect([...docs.keys()].filter((name) => !names.has(name))).toEqual([]);
  });
});

/** Markdown links outside fenced code, with the line they are on. */
function links(file: string): Array<{ target: string; line: number }> {
  const found: Array<{ target: string; line: number }> = [];
  let fenced = false;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (/^\s*```/.test(text)) fenced = !fenced;
      if (fenced) return;
      const prose = text.replace(/`[^`]*`/g, '');
      for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) found.push({ target: m[1]!, line: i + 1 });
    });
  return found;
}

/** GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped, spaces to dashes, repeats numbered). */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  let fenced = false;
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*```/.test(text)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!heading) continue;
    const base = heading[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => join(ROOT, 'docs', f));
const PAGES = [join(ROOT, 'README.md'), ...DOCS];

describe('links of README.md and docs/', () => {
  it('the README links to every page of docs/', () => {
    const linked = new Set(links(join(ROOT, 'README.md')).map((l) => resolve(ROOT, l.target.split('#')[0]!)));
    expect(DOCS.filter((page) => !linked.has(page)).map((page) => relative(ROOT, page))).toEqual([]);
  });

  it.each(PAGES.map((page) => [relative(ROOT, page), page] as const))('every relative link of %s resolves', (_, page) => {
    const broken: string[] = [];
    for (const { target, line } of links(page)) {
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? page : resolve(dirname(page), path);
      if (!existsSync(file)) broken.push(`${line}: ${target} (no such file)`);
      else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) broken.push(`${line}: ${target} (no such heading)`);
    }
    expect(broken).toEqual([]);
  });
});
