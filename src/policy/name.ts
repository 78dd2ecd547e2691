/**
 * The one place DNS names are normalised: ASCII lower case, exactly one trailing dot.
 * Patterns and question names both pass through here, so they compare as plain strings.
 * On the hot path (once per answer), hence no allocation for a name already normal.
 */
export function normaliseName(name: string): string {
  let normal = true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      normal = false;
      break;
    }
  }
  const lower = normal ? name : asciiLowerCase(name);
  return lower.endsWith('.') ? lower : `${lower}.`;
}

/** DNS is case-insensitive only for ASCII letters (RFC 4343); locale rules must not apply. */
function asciiLowerCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}
