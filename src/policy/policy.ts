/**
 * The policy: is this (normalised) question name allowed, and by which pattern?
 * Exact names are one Map lookup; wildcards are tried after, in the order given.
 */
import { ConfigError } from '../errors.js';
import { compilePattern, type CompiledPattern } from './pattern.js';

export class Policy {
  private constructor(
    readonly patterns: readonly CompiledPattern[],
    private readonly exact: ReadonlyMap<string, CompiledPattern>,
    private readonly wildcards: readonly CompiledPattern[],
  ) {}

  static compile(sources: readonly string[], options: { allowAll?: boolean } = {}): Policy {
    if (sources.length === 0) {
      throw new ConfigError('no pattern given: name at least one allowed DNS name, e.g. on-his-name "example.com."');
    }
    const patterns: CompiledPattern[] = [];
    const seen = new Set<string>();
    for (const source of sources) {
      const pattern = compilePattern(source, options);
      if (seen.has(pattern.normalised)) continue;
      seen.add(pattern.normalised);
      patterns.push(pattern);
    }
    const exact = new Map(patterns.filter((p) => p.kind === 'exact').map((p) => [p.normalised, p]));
    return new Policy(patterns, exact, patterns.filter((p) => p.kind !== 'exact'));
  }

  match(name: string): CompiledPattern | undefined {
    const exact = this.exact.get(name);
    if (exact) return exact;
    for (const pattern of this.wildcards) if (pattern.matches(name)) return pattern;
    return undefined;
  }
}
