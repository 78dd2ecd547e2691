/**
 * The normal form of a DNS name: ASCII lower case, one trailing dot. Names typed as text
 * (patterns) are normalised here; names off the wire are read into the same form by
 * records.ts readNormalisedName, which also escapes what a label may hold and text cannot
 * show plainly (`\.` for a dot inside a label, `\\`, `\DDD`), so they compare as plain
 * strings and two different wire names never give the same string.
 *
 * It normalises, it does not validate: a malformed name (`a..b`, `a..`) keeps its extra
 * dots, so it can never collide with a well-formed name. Patterns are validated in
 * pattern.ts; names off the wire are well-formed by construction.
 */
export function normaliseName(name: string): string {
  const lower = asciiLowerCase(name);
  // Once per DNS answer: a name already normal comes back as the very same string.
  return lower.charCodeAt(lower.length - 1) === DOT ? lower : `${lower}.`;
}

const DOT = 0x2e;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
const ASCII_END = 0x80;

/**
 * DNS folds case for ASCII letters only (RFC 4343). String#toLowerCase folds all of
 * Unicode (e.g. U+212A KELVIN SIGN → "k"), so it is safe only on an all-ASCII string.
 */
function asciiLowerCase(name: string): string {
  let hasUpper = false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= ASCII_END) return foldAsciiOnly(name);
    if (c >= UPPER_A && c <= UPPER_Z) hasUpper = true;
  }
  return hasUpper ? name.toLowerCase() : name;
}

/** The rare name with non-ASCII text: fold A-Z one character at a time. */
function foldAsciiOnly(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    out += c >= UPPER_A && c <= UPPER_Z ? String.fromCharCode(c + 32) : name[i];
  }
  return out;
}
