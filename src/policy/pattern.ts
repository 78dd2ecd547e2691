/**
 * Allow patterns: validated and compiled once, at start-up.
 *
 *   example.com.        that name only
 *   *.example.com.      exactly one non-empty label in place of '*'
 *   api-*.example.com.  '*' inside a label matches within that label (possibly nothing)
 *   **.example.com.     one or more labels (any depth), never the name itself
 *
 * A wildcard never matches across a dot, nor a name with an escaped byte (`\.` for a dot
 * inside a label, `\\`, `\DDD`: how names off the wire spell bytes a pattern cannot hold,
 * see records.ts readNormalisedName). Everything else is refused with a ConfigError that
 * names the pattern and the fix.
 */
import { ConfigError } from '../util/errors.js';
import { normaliseName } from '../dns/name.js';

export type PatternKind = 'exact' | 'wildcard' | 'all';

export interface PatternOptions {
  /** Accept patterns that allow every name or nearly every one (the CLI's --allow-all). */
  allowAll?: boolean;
}

export interface CompiledPattern {
  /** As the operator typed it, for logs and decisions. */
  readonly source: string;
  readonly normalised: string;
  readonly kind: PatternKind;
  /** `name` must already be normalised (normaliseName); a name that is not never matches. */
  matches(name: string): boolean;
}

const MAX_LABEL = 63;
const MAX_NAME = 253; // presentation form without the trailing dot (RFC 1035: 255 octets on the wire)
const DOT = 0x2e;
const BACKSLASH = 0x5c;
const SEE_README = '(see README "Pattern syntax")';

export function compilePattern(source: string, options: PatternOptions = {}): CompiledPattern {
  const normalised = normaliseName(source);
  if (source.trim() === '' || normalised === '.') {
    throw refuse(source, 'it is empty; give a DNS name such as "example.com."');
  }
  if (normalised === '*.' || normalised === '**.') {
    if (!options.allowAll) {
      throw refuse(source, 'it allows every name; name the domains you need, or pass --allow-all if that is really meant');
    }
    return { source, normalised, kind: 'all', matches: matchesEverything };
  }

  const labels = normalised.slice(0, -1).split('.');
  labels.forEach((label, index) => checkLabel(source, label, index));
  if (normalised.length - 1 > MAX_NAME) {
    throw refuse(source, `it is ${normalised.length - 1} characters long, more than a DNS name's ${MAX_NAME}`);
  }
  if (!normalised.includes('*')) {
    return { source, normalised, kind: 'exact', matches: (name) => name === normalised };
  }
  if (!options.allowAll && labels.every(isOnlyWildcard)) {
    throw refuse(source, 'no label in it is fixed, so it allows nearly every name; anchor it to a domain, e.g. "*.example.com.", or pass --allow-all');
  }
  return { source, normalised, kind: 'wildcard', matches: wildcardMatcher(labels) };
}

function matchesEverything(): boolean {
  return true;
}

function refuse(source: string, why: string): ConfigError {
  return new ConfigError(`bad pattern ${JSON.stringify(source)}: ${why} ${SEE_README}`);
}

function isOnlyWildcard(label: string): boolean {
  return label === '*' || label === '**';
}

// ── validation ───────────────────────────────────────────────────────────────────────

function checkLabel(source: string, label: string, index: number): void {
  if (label === '') {
    throw refuse(source, 'it has an empty label (two dots in a row, or a leading dot); write it like "a.example.com."');
  }
  for (const char of label) {
    if (!isPatternChar(char)) throw refuse(source, whyCharIsRefused(char));
  }
  if (label.includes('**') && (label !== '**' || index !== 0)) {
    throw refuse(source, `'**' may only be the whole leftmost label, as in "**.example.com."; use '*' within a label`);
  }
  if (label.length > MAX_LABEL) {
    throw refuse(source, `the label "${label}" is ${label.length} characters long, more than a DNS label's ${MAX_LABEL}`);
  }
}

/** After ASCII lower-casing: letters, digits, '-', '_' (SRV and DKIM names use it) and '*'. */
function isPatternChar(char: string): boolean {
  return (char >= 'a' && char <= 'z') || (char >= '0' && char <= '9') || char === '-' || char === '_' || char === '*';
}

// Characters an operator reaches for from shell globs or regular expressions.
const GLOB_OR_REGEX = new Set(['?', '[', ']', '{', '}', '(', ')', '|', '+', '^', '$', '\\', '!']);

/** The fix depends on what the operator probably meant by the character. */
function whyCharIsRefused(char: string): string {
  const shown = `'${JSON.stringify(char).slice(1, -1)}'`; // control characters become visible
  if (GLOB_OR_REGEX.has(char)) {
    return `${shown} is not pattern syntax; use '*' for one label or '**.' for any depth of subdomain`;
  }
  if (char.charCodeAt(0) >= 0x80) {
    return `${shown} is not ASCII; write an internationalised name in its xn-- (punycode) form`;
  }
  if (char === ':' || char === '/' || char === '@') {
    return `${shown} cannot be in a DNS name; give the host name only, e.g. "example.com." rather than a URL or host:port`;
  }
  if (char === ',' || char === ';') {
    return `${shown} cannot be in a DNS name; give each pattern as its own argument`;
  }
  return `${shown} cannot be in a DNS name; a label holds only letters, digits, '-', '_' and '*'`;
}

// ── matching ─────────────────────────────────────────────────────────────────────────

/** Tests `name.slice(start, end)`, one label of the name, without copying it. */
type LabelMatcher = (name: string, start: number, end: number) => boolean;

/**
 * Walks the name's labels from the right, one pattern label each, by index: no regex
 * (a label like "a*a*a*b" would backtrack exponentially on a hostile 63-character
 * label) and no allocation per call. A label is bounded by dots, so no wildcard can
 * match across one.
 *
 * A name with a backslash holds a label no pattern can spell (`x\.cdn.test.` is the one
 * label "x.cdn" under test., not x under cdn.test.): exact patterns never equal it, and a
 * wildcard does not stand for it either, so no label splitting here has to read escapes.
 */
function wildcardMatcher(labels: readonly string[]): (name: string) => boolean {
  const anyDepth = labels[0] === '**';
  const rest = labels.slice(1);
  if ((anyDepth || labels[0] === '*') && rest.length > 0 && !rest.some((label) => label.includes('*'))) {
    return suffixMatcher(`.${rest.join('.')}.`, anyDepth);
  }
  const fixed = (anyDepth ? rest : labels).map(labelMatcher);
  return (name) => {
    let end = name.length - 1; // index of the dot that closes the label being matched
    if (name.charCodeAt(end) !== DOT || name.includes('\\')) return false;
    for (let i = fixed.length - 1; i >= 0; i--) {
      if (end < 1) return false; // the name ran out of labels
      const start = name.lastIndexOf('.', end - 1) + 1;
      if (!fixed[i]!(name, start, end)) return false;
      end = start - 1;
    }
    return anyDepth ? isNonEmptyLabels(name, end) : end === -1;
  };
}

/**
 * The usual shapes, `*.example.com.` and `**.example.com.`, as one comparison of the fixed
 * suffix and one pass over what is left: one label or (anyDepth) one or more, with no
 * backslash. The same answers as the general walk above (test/unit/policy/pattern.test.ts).
 */
function suffixMatcher(suffix: string, anyDepth: boolean): (name: string) => boolean {
  return (name) => {
    const end = name.length - suffix.length; // index of the dot that opens the suffix
    if (end < 1 || !name.endsWith(suffix)) return false;
    let previousWasDot = true;
    for (let i = 0; i < end; i++) {
      const c = name.charCodeAt(i);
      if (c === BACKSLASH) return false;
      if (c === DOT) {
        if (previousWasDot || !anyDepth) return false;
        previousWasDot = true;
      } else previousWasDot = false;
    }
    return !previousWasDot; // the label next to the suffix is not empty either
  };
}

/** `name.slice(0, end + 1)` is one or more labels, each non-empty and closed by a dot. */
function isNonEmptyLabels(name: string, end: number): boolean {
  if (end < 1) return false;
  let previousWasDot = true;
  for (let i = 0; i <= end; i++) {
    const isDot = name.charCodeAt(i) === DOT;
    if (isDot && previousWasDot) return false;
    previousWasDot = isDot;
  }
  return true;
}

function labelMatcher(label: string): LabelMatcher {
  if (!label.includes('*')) {
    return (name, start, end) => end - start === label.length && name.startsWith(label, start);
  }
  return globMatcher(label.split('*'));
}

/**
 * `parts` are the literal pieces around the '*'s. Pinning the first and last piece to
 * the label's ends and finding each middle piece at its leftmost place is exact for
 * '*'-only globs, and linear in the label's length.
 */
function globMatcher(parts: readonly string[]): LabelMatcher {
  const prefix = parts[0] ?? '';
  const suffix = parts[parts.length - 1] ?? '';
  const middles = parts.slice(1, -1);
  // A DNS label is never empty, so '*' alone needs at least one character.
  const minLength = Math.max(1, parts.reduce((sum, part) => sum + part.length, 0));
  return (name, start, end) => {
    if (end - start < minLength) return false;
    const suffixStart = end - suffix.length;
    if (!name.startsWith(prefix, start) || !name.startsWith(suffix, suffixStart)) return false;
    let at = start + prefix.length;
    for (let i = 0; i < middles.length; i++) {
      const middle = middles[i]!;
      const found = name.indexOf(middle, at);
      if (found === -1 || found + middle.length > suffixStart) return false;
      at = found + middle.length;
    }
    return true;
  };
}
