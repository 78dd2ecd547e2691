/**
 * A set of allow patterns: is this (normalised) question name allowed, and by which pattern?
 * One call per DNS answer, so exact names are one Map lookup and only the wildcards,
 * usually few, are tried one by one, in the order the operator gave them.
 */
import { ConfigError } from '../util/errors.js';
import { compilePattern, type CompiledPattern, type PatternOptions } from './pattern.js';

export class Patterns {
  private constructor(
    /** Deduplicated, in the order given; the first spelling of a name is kept. */
    readonly patterns: readonly CompiledPattern[],
    private readonly exact: ReadonlyMap<string, CompiledPattern>,
    private readonly wildcards: readonly CompiledPattern[],
  ) {}

  static compile(sources: readonly string[], options: PatternOptions = {}): Patterns {
    if (sources.length === 0) {
      throw new ConfigError('no pattern given: name at least one allowed DNS name, e.g. on-his-name "example.com."');
    }
    return Patterns.compileAllowingNone(sources, options);
  }

  /** As compile(), but none is fine: a policy may allow nothing (the refusing one, or a default that a policy file leaves empty). */
  static compileAllowingNone(sources: readonly string[], options: PatternOptions = {}): Patterns {
    const byName = new Map<string, CompiledPattern>();
    for (const source of sources) {
      const pattern = compilePattern(source, options);
      // The same name twice (case, trailing dot) is harmless; refusing it would only annoy.
      if (!byName.has(pattern.normalised)) byName.set(pattern.normalised, pattern);
    }
    const patterns = [...byName.values()];
    const exact = new Map(patterns.filter((p) => p.kind === 'exact').map((p) => [p.normalised, p] as const));
    return new Patterns(patterns, exact, patterns.filter((p) => p.kind !== 'exact'));
  }

  /** `name` must be normalised (normaliseName, or readNormalisedName off the wire). An exact pattern wins over a wildcard. */
  match(name: string): CompiledPattern | undefined {
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    for (let i = 0; i < this.wildcards.length; i++) {
      const pattern = this.wildcards[i]!;
      if (pattern.matches(name)) return pattern;
    }
    return undefined;
  }
}
