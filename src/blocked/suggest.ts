/**
 * From what was blocked to what to allow: per policy, the patterns that would have let it
 * through, for a person to review and paste into the policy file. Pure.
 *
 * - A name whose answer the policy denied, followed by a blocked connection to one of its
 *   addresses, is proposed as is.
 * - Names one label below the same parent become `*.parent.` when there are at least two;
 *   names at several depths below one parent become `**.parent.` — never above what was
 *   seen, and never at or above a public suffix (`*.com.`, `*.co.uk.`, `*.github.io.`
 *   are refused: the Public Suffix List, private domains included, says where that is).
 * - A name the policy allows, tried on a port it does not open, is a port to add.
 * - An address no answer named is hard-coded: no pattern can open it; listed apart.
 */
import { getDomain } from 'tldts';
import type { BlockedEntry } from './view.js';

export interface PolicyPorts {
  name: string;
  origin: string;
  ports: readonly string[];
}

export interface SuggestedPattern {
  pattern: string;
  /** The names seen that it covers. */
  names: string[];
  attempts: number;
}

export interface Suggestion {
  policy: string;
  origin: string;
  audit: boolean;
  allow: SuggestedPattern[];
  /** Ports to add ("tcp/22"), with the allowed names tried on them. */
  ports: Array<{ port: string; names: string[]; attempts: number }>;
  hardCoded: Array<{ address: string; port: string; clients: string[]; attempts: number }>;
}

export function suggest(entries: readonly BlockedEntry[], policies: readonly PolicyPorts[]): Suggestion[] {
  const byPolicy = new Map<string, BlockedEntry[]>();
  for (const entry of entries) byPolicy.set(entry.policy, [...(byPolicy.get(entry.policy) ?? []), entry]);
  const suggestions: Suggestion[] = [];
  for (const [name, blocked] of byPolicy) {
    const policy = policies.find((p) => p.name === name);
    const denied = new Map<string, number>();
    const ports = new Map<string, { names: Set<string>; attempts: number }>();
    const hardCoded = new Map<string, { address: string; port: string; clients: Set<string>; attempts: number }>();
    for (const entry of blocked) {
      const port = `${entry.protocol}/${entry.port}`;
      if (!entry.answer) {
        const key = `${entry.address} ${port}`;
        const seen = hardCoded.get(key) ?? { address: entry.address, port, clients: new Set<string>(), attempts: 0 };
        seen.clients.add(entry.client);
        seen.attempts += entry.count;
        hardCoded.set(key, seen);
      } else if (!entry.answer.allowed) {
        denied.set(entry.answer.name, (denied.get(entry.answer.name) ?? 0) + entry.count);
      } else if (!policy?.ports.includes(port)) {
        const seen = ports.get(port) ?? { names: new Set<string>(), attempts: 0 };
        seen.names.add(entry.answer.name);
        seen.attempts += entry.count;
        ports.set(port, seen);
      }
    }
    suggestions.push({
      policy: name,
      origin: policy?.origin ?? 'unknown',
      audit: blocked.some((e) => e.audit),
      allow: group(denied),
      ports: [...ports].map(([port, seen]) => ({ port, names: [...seen.names].sort(), attempts: seen.attempts })),
      hardCoded: [...hardCoded.values()].map((h) => ({ ...h, clients: [...h.clients].sort() })),
    });
  }
  return suggestions.sort((a, b) => (a.policy === 'default' ? -1 : b.policy === 'default' ? 1 : a.policy.localeCompare(b.policy)));
}

/** Names (with their attempts) as patterns: the narrowest grouping first, each name in one pattern. */
export function group(names: ReadonlyMap<string, number>): SuggestedPattern[] {
  const left = new Set(names.keys());
  const patterns: SuggestedPattern[] = [];
  // Candidate parents, deepest first: the narrowest group wins a name.
  const parents = [...new Set([...left].flatMap(ancestors))].filter(groupable).sort((a, b) => labels(b) - labels(a) || a.localeCompare(b));
  for (const parent of parents) {
    const below = [...left].filter((n) => n.endsWith(`.${parent}`) && !n.includes('\\'));
    if (below.length < 2) continue;
    const depths = new Set(below.map((n) => labels(n) - labels(parent)));
    const pattern = depths.size === 1 && depths.has(1) ? `*.${parent}` : depths.size > 1 ? `**.${parent}` : undefined;
    if (!pattern) continue;
    for (const n of below) left.delete(n);
    patterns.push({ pattern, names: below.sort(), attempts: below.reduce((sum, n) => sum + names.get(n)!, 0) });
  }
  for (const n of left) patterns.push({ pattern: n, names: [n], attempts: names.get(n)! });
  return patterns.sort((a, b) => b.attempts - a.attempts || a.pattern.localeCompare(b.pattern));
}

/** Every proper suffix of a name, as names ("a.b.example.com." → "b.example.com.", "example.com.", "com."). */
function ancestors(name: string): string[] {
  if (name.includes('\\')) return []; // an escaped dot inside a label: kept as it is
  const parts = name.split('.').filter(Boolean);
  return parts.slice(1).map((_, i) => `${parts.slice(i + 1).join('.')}.`);
}

/** At or below a registrable domain: grouping there stays within one owner's names. */
function groupable(parent: string): boolean {
  const domain = getDomain(parent.slice(0, -1), { allowPrivateDomains: true });
  return domain !== null && (parent === `${domain}.` || parent.endsWith(`.${domain}.`));
}

function labels(name: string): number {
  return name.split('.').filter(Boolean).length;
}
