import { describe, expect, it } from 'vitest';
import { PolicyFileError, parsePolicyFile } from '../../../src/policy/policy-file.js';

/** The one line a refused file gives: file:line: reason. */
const refusal = (text: string) => {
  try {
    parsePolicyFile(text, 'p.yaml');
  } catch (err) {
    if (err instanceof PolicyFileError) return err.message;
    throw err;
  }
  return 'accepted';
};

describe('the policy file, when it is not valid YAML', () => {
  // Found by test/integration/policies.test.ts: the line was missing ("p.yaml: not valid YAML: …"),
  // as the yaml library fills in linePos only when it prettifies its errors.
  it.each([
    { text: 'allow: ["a.test."]\npolicies:\n  web:\n    allow: ["b.test."\n    clients: ["192.0.2.11/32"]\n', line: 5, reason: 'Flow sequence in block collection must be sufficiently indented and end with a ]' },
    { text: 'allow: ["a.test."]\nallow: ["b.test."]\n', line: 2, reason: 'Map keys must be unique' },
    { text: 'allow:\n  - "a.test.\n', line: 3, reason: 'Missing closing "quote' },
  ])('names the line: $reason', ({ text, line, reason }) => {
    expect(refusal(text)).toBe(`p.yaml:${line}: not valid YAML: ${reason}`);
  });
});
