/**
 * examples/on-his-name.service: systemd accepts every line of it (systemd-analyze verify,
 * when installed), and what it passes to on-his-name is a configuration the daemon takes.
 */
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { OPTIONS } from '../../src/config/options.js';
import { splitRule } from '../../src/firewall/rules.js';
import { hasCommand, missingNote } from '../support/tools.js';

const UNIT = new URL('../../examples/on-his-name.service', import.meta.url);
const hasSystemdAnalyze = hasCommand('systemd-analyze', ['--version']);

async function unit() {
  const text = await readFile(UNIT, 'utf8');
  const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
  return { text, values };
}

describe('examples/on-his-name.service', () => {
  it.skipIf(!hasSystemdAnalyze)(`passes systemd-analyze verify without a warning${missingNote('systemd-analyze', 'systemd')}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ohn-unit-'));
    try {
      const { text } = await unit();
      // verify wants ExecStart's program to exist; point it at one that does.
      const path = join(dir, 'on-his-name.service');
      await writeFile(path, text.replace(/^ExecStart=\S+/m, 'ExecStart=/bin/true'));
      const result = await execa('systemd-analyze', ['verify', path], { reject: false });
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives the daemon a configuration it accepts, with the API on loopback and the socket in the runtime directory', async () => {
    const { values } = await unit();
    const env = Object.fromEntries(values('Environment').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    const [program, ...args] = splitRule(values('ExecStart')[0]!);
    expect(program).toBe('/usr/local/bin/on-his-name');
    const config = parseConfig(args, env);
    expect(config).toMatchObject({ command: 'run', logFormat: 'json', adminListen: { loopback: true } });
    expect(config.patterns.length).toBeGreaterThan(0);
    expect(config.listen).toEqual({ transport: 'unix', path: OPTIONS.listen.default });
    expect(`/run/${values('RuntimeDirectory')[0]}`).toBe(dirname(OPTIONS.listen.default));
    expect(values('ReadWritePaths')).toEqual([dirname(OPTIONS.listen.default)]);
  });

  it('keeps only the capabilities it needs and the hardening on', async () => {
    const { values } = await unit();
    expect(values('CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN']);
    expect(values('AmbientCapabilities')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN']);
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['Restart', 'on-failure'],
    ]) {
      expect(values(key!), key).toEqual([value]);
    }
    expect(values('After')[0]).toContain('docker.service');
    expect(values('Wants')[0]).toContain('docker.service');
    expect(values('MemoryDenyWriteExecute')).toEqual([]); // Node's JIT would die
  });
});
