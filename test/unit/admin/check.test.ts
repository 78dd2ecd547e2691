/**
 * `on-his-name check`: the policies the daemon would run with, printed, exit 0; or the same
 * one-line ConfigError the daemon and a reload give, which the CLI prints with exit 2.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheck } from '../../../src/admin/check.js';
import { parseConfig } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-check-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function check(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runCheck(parseConfig(['check', ...args], {}), { write: (text: string) => (out += text) });
  return { code, out };
}

describe('on-his-name check', () => {
  it('prints every policy with its ports, clients and patterns, says OK and exits 0', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(
      file,
      ['allow: ["example.com."]', 'ports: [443]', 'policies:', '  ci:', '    allow: ["github.com.", "*.github.com."]', '    ports: [443, udp/22]', '    clients: ["172.18.0.16/28"]', '  web:', '    allow: []', ''].join('\n'),
    );
    expect(await check(['--policy', file, 'allowed.test.'])).toEqual({
      code: 0,
      out: [
        'POLICY   PORTS           CLIENTS               PATTERNS',
        'default  tcp/443         (every other client)  allowed.test. example.com.',
        'ci       tcp/443 udp/22  172.18.0.16/28        github.com. *.github.com.',
        'web      tcp/443         -                     (none: opens nothing)',
        '',
        `${file} and the command line: 3 policies, 4 pattern(s): OK`,
        '',
      ].join('\n'),
    });
  });

  it('checks the command line alone without a file', async () => {
    const { code, out } = await check(['--ports', '443', 'a.test.']);
    expect(code).toBe(0);
    expect(out).toMatch(/^POLICY +PORTS +CLIENTS +PATTERNS\ndefault +tcp\/443 +\(every other client\) +a\.test\.\n\nthe command line: 1 policy, 1 pattern\(s\): OK\n$/);
  });

  it('refuses a bad file with the ConfigError the CLI prints as one line (exit 2), naming the file and line', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'policies:\n  ci:\n    allow: [github.com.]\n  default:\n    allow: [everything.test.]\n');
    const err = await check(['--policy', file, 'a.test.']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^${file}:4: "default" cannot name a policy`));
    expect((err as Error).message).not.toContain('\n');
  });

  it('refuses a file it cannot read, and a command line without patterns or file, the same way', async () => {
    await expect(check(['--policy', join(dir, 'missing.yaml'), 'a.test.'])).rejects.toThrow(new ConfigError(`cannot read the policy file ${join(dir, 'missing.yaml')} (ENOENT): check --policy`));
    await expect(check([])).rejects.toThrow(ConfigError);
  });

  it('prints nothing when it refuses: no half a table before the error', async () => {
    const file = join(dir, 'policies.yaml');
    await writeFile(file, 'policies:\n  ci: {allow: ["*"]}\n');
    let out = '';
    await expect(runCheck(parseConfig(['check', '--policy', file, 'a.test.'], {}), { write: (t: string) => (out += t) })).rejects.toThrow(ConfigError);
    expect(out).toBe('');
  });
});
