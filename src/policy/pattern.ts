/**
 * Allow patterns: validated and compiled once, at start-up.
 *
 *   example.com.        that name only
 *   *.example.com.      exactly one label in place of '*'
 *   api-*.example.com.  '*' inside a label matches within that label
 *   **.example.com.     one or more labels (any depth), never the name itself
 *
 * A wildcard never matches across a dot. Everything else is refused with a ConfigError
 * that names the pattern and the fix.
 */
import { ConfigError } from '../errors.js';
import { normaliseName } from './name.js';

export interface CompiledPattern {
  /** As the operator typed it. */
  source: string;
  normalised: string;
  kind: 'exact' | 'wildcard' | 'all';
  /** `name` must already be normalised. */
  matches(name: string): boolean;
}

const MAX_LABEL = 63;
const MAX_NAME = 253;
const LABEL_CHARS = /^[a-z0-9_*-]+$/;
const SYNTAX_HINT = `use '*' for one label or '**.' for any depth of subdomain (see README "Pattern syntax")`;

export function compilePattern(source: string, options: { allowAll?: boolean } = {}): CompiledPattern {
  const bad = (why: string) => new ConfigError(`bad pattern ${JSON.stringify(source)}: ${why}`);
  if (source.trim() === '' || source === '.') throw bad('it is empty; name a DNS name such as "example.com."');
  const normalised = normaliseName(source);
  if (normalised === '*.' || normalised === '**.') {
    if (!options.allowAll) throw bad('it allows every name; pass --allow-all if that is really what you want');
    return { source, normalised, kind: 'all', matches: () => true };
  }
  const labels = normalised.slice(0, -1).split('.');
  if (normalised.length - 1 > MAX_NAME) throw bad(`it is longer than ${MAX_NAME} characters`);
  labels.forEach((label, index) => checkLabel(label, index, bad));
  if (!normalised.includes('*')) {
    return { source, normalised, kind: 'exact', matches: (name) => name === normalised };
  }
  const regex = new RegExp(`^${labels.map(labelRegex).join('')}$`);
  return { source, normalised, kind: 'wildcard', matches: (name) => regex.test(name) };
}

function checkLabel(label: string, index: number, bad: (why: string) => ConfigError): void {
  if (label === '') throw bad('it has an empty label (two dots in a row, or a leading dot)');
  if (label.length > MAX_LABEL) throw bad(`the label "${label}" is longer than ${MAX_LABEL} characters`);
  if (label.includes('**') && (label !== '**' || index !== 0)) {
    throw bad(`'**' may only be the whole leftmost label, as in "**.example.com."`);
  }
  if (!LABEL_CHARS.test(label)) {
    const offender = [...label].find((c) => !/[a-z0-9_*-]/.test(c)) ?? label;
    throw bad(`${JSON.stringify(offender)} is not pattern syntax; ${SYNTAX_HINT}`);
  }
}

/** Each label becomes a regex piece ending with its dot, so no piece can span two labels. */
function labelRegex(label: string): string {
  if (label === '**') return '(?:[^.]+\\.)+';
  if (label === '*') return '[^.]+\\.';
  return `${label.split('*').map(escapeRegex).join('[^.]*')}\\.`;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
