import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApplyError } from '../../../src/util/errors.js';
import { persistentIpset, type IpsetRunner } from '../../../src/firewall/ipset-runner.js';

const FAKE = fileURLToPath(new URL('../../support/fake-ipset-interactive.sh', import.meta.url));

/** The long-lived runner's protocol (batch, then `version`, errors attributed to the batch) against a scripted ipset. */
describe('persistentIpset', () => {
  let dir: string;
  let log: string;
  let runner: IpsetRunner;
  const seen = async () => (await readFile(log, 'utf8')).trim().split('\n');

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-ipset-runner-'));
    log = join(dir, 'log');
    runner = persistentIpset({ ipset: FAKE, prefix: ['env', `FAKE_IPSET_LOG=${log}`] });
  });
  afterEach(async () => {
    runner.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes each batch followed by `version`, and resolves once that is answered', async () => {
    await runner.restore('add s 198.51.100.1 timeout 5\n');
    await runner.restore('del s 198.51.100.1\nadd s 198.51.100.2 timeout 0\n');
    expect(await seen()).toEqual([
      'start -exist -',
      'add s 198.51.100.1 timeout 5',
      'version',
      'del s 198.51.100.1',
      'add s 198.51.100.2 timeout 0',
      'version',
    ]);
  });

  it("fails a batch with the error ipset printed for it, and serves the next one on the same process", async () => {
    const failure = runner.restore('add s 198.51.100.1\nadd s bad\n');
    await expect(failure).rejects.toThrow(ApplyError);
    await expect(failure).rejects.toThrow('ipset v7.17: Syntax error: cannot parse add s bad');
    await runner.restore('add s 198.51.100.3\n');
    expect((await seen()).filter((l) => l.startsWith('start'))).toHaveLength(1);
  });

  it('fails a batch whose process died, and starts a new one for the next', async () => {
    await expect(runner.restore('die\n')).rejects.toThrow(/exited/);
    await runner.restore('add s 198.51.100.4\n');
    expect((await seen()).filter((l) => l.startsWith('start'))).toHaveLength(2);
  });

  it('keeps concurrent batches apart on the one pipe', async () => {
    await Promise.all([runner.restore('add s 198.51.100.5\n'), runner.restore('add s bad\n').catch(() => 'failed'), runner.restore('add s 198.51.100.6\n')]);
    expect(await seen()).toEqual(['start -exist -', 'add s 198.51.100.5', 'version', 'add s bad', 'version', 'add s 198.51.100.6', 'version']);
  });
});
