/**
 * loadPolicies: the command line and the policy file, read whole and checked before anything
 * uses them; a file that cannot be read is one line naming it and --policy.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/config.js';
import { loadPolicies } from '../../../src/config/policies.js';
import { PolicyFileError } from '../../../src/policy/policy-file.js';
import { ConfigError } from '../../../src/util/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-policies-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const config = (args: string[], env: Record<string, string> = {}) => parseConfig(args, env);

describe('loadPolicies', () => {
  it('without a file: the command-line patterns on --ports, and no other policy', async () => {
    const policies = await loadPolicies(config(['--ports', '443', 'a.test.', 'b.test.']));
    expect(policies.defaultPolicy.patterns.patterns.map((p) => p.source)).toEqual(['a.test.', 'b.test.']);
    expect(policies.defaultPolicy.ports).toEqual([{ protocol: 'tcp', port: 443 }]);
    expect([...policies.named.keys()]).toEqual([]);
  });

  it('with --policy, or POLICY_FILE: the file joins the command line', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'allow: [b.test.]\npolicies:\n  ci: {allow: [github.com.]}\n');
    for (const policies of [await loadPolicies(config(['--policy', file, 'a.test.'])), await loadPolicies(config(['a.test.'], { POLICY_FILE: file }))]) {
      expect(policies.defaultPolicy.patterns.patterns.map((p) => p.source)).toEqual(['a.test.', 'b.test.']);
      expect([...policies.named.keys()]).toEqual(['ci']);
    }
  });

  it('with a file, needs no pattern on the command line', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'policies:\n  ci: {allow: [github.com.]}\n');
    expect((await loadPolicies(config(['--policy', file]))).defaultPolicy.patterns.patterns).toEqual([]);
    await expect(loadPolicies(config([]))).rejects.toThrow('no pattern given');
  });

  it('passes --allow-all to the file and to labels', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'policies:\n  open: {allow: ["*"]}\n');
    await expect(loadPolicies(config(['--policy', file, 'a.test.']))).rejects.toThrow(`${file}:2: bad pattern "*": it allows every name`);
    const policies = await loadPolicies(config(['--allow-all', '--policy', file, 'a.test.']));
    expect(policies.named.get('open')!.patterns.match('anything.test.')).toBeDefined();
    expect(policies.forLabels({ 'on-his-name.allow': '**' }, 'f'.repeat(64))!.origin).toBe('label');
  });

  it('refuses a bad file with its FILE:LINE error, a ConfigError', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'policies:\n  ci:\n    allow: ["bad?"]\n');
    const err = await loadPolicies(config(['--policy', file, 'a.test.'])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^${file}:3: bad pattern "bad\\?"`));
  });

  it.each([
    ['missing', (d: string) => join(d, 'nope.yaml'), 'ENOENT'],
    ['a directory', (d: string) => d, 'EISDIR'],
  ])('says which file cannot be read (%s), why, and to check --policy', async (_what, path, code) => {
    const file = path(dir);
    const err = await loadPolicies(config(['--policy', file, 'a.test.'])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`cannot read the policy file ${file} (${code}): check --policy`);
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe(code);
  });

  it('refuses, with --backend ipset, a policy of the file with more ports of one protocol than the set rule takes, on its line', async () => {
    const file = join(dir, 'policies.yaml');
    const ports = Array.from({ length: 16 }, (_, i) => 8000 + i).join(', ');
    await writeFile(file, `policies:\n  ci:\n    allow: [a.test.]\n    ports: [${ports}]\n`);
    await expect(loadPolicies(config(['--backend', 'ipset', '--policy', file, 'a.test.']))).rejects.toThrow(
      `${file}:4: policy ci: ports: --backend ipset opens at most 15 tcp ports (got 16): give fewer, or use another backend`,
    );
    expect((await loadPolicies(config(['--backend', 'iptables', '--policy', file, 'a.test.']))).named.get('ci')!.ports).toHaveLength(16);
    const policies = await loadPolicies(config(['--backend', 'ipset', 'a.test.']));
    expect(policies.forLabels({ 'on-his-name.allow': 'b.test.', 'on-his-name.ports': ports.replaceAll(' ', '') }, 'f'.repeat(64))!.name).toBe('refused');
  });
});
