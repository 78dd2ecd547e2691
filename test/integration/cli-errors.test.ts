/** What an operator sees for the mistakes they can fix: one line, the fix named, no stack trace. */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canUseNamespaces, skipNote } from '../support/root.js';

import { CLI } from '../support/cli-process.js';
const cli = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [CLI, ...args], { reject: false, env: { ...env, LISTEN: '/tmp/ohn-never-used.sock' } });

function expectOneLine(result: { exitCode?: number; stderr: unknown; stdout: unknown }, message: RegExp) {
  const stderr = String(result.stderr).trim();
  expect(result.exitCode).toBe(2);
  expect(stderr.split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^on-his-name: /);
  expect(stderr).toMatch(message);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('user errors from the real CLI', () => {
  it.each([
    [['--bogus', 'a.test'], /Unknown option '--bogus'.*--help/],
    [['foo?.test'], /bad pattern "foo\?\.test"/],
    [['*'], /--allow-all/],
    [[], /no pattern given/],
    [['--ports', '80,http', 'a.test'], /--ports "http" is not a port/],
  ])('%j', async (args, message) => {
    expectOneLine(await cli(args), message);
  });

  it('names the docker network command when Docker cannot be reached', async () => {
    expectOneLine(await cli(['a.test'], { DOCKER_HOST: 'unix:///tmp/ohn-no-docker.sock' }), /cannot reach Docker at .*ohn-no-docker.sock.*--interface/);
  });

  it('prints help and version', async () => {
    expect((await cli(['--help'])).stdout).toMatch(/Usage:[\s\S]*--listen PATH/);
    expect((await cli(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe.skipIf(!canUseNamespaces())(`user errors that need a namespace${skipNote()}`, () => {
  const ns = `ohn-err-${process.pid}`;
  const inNs = (args: string[], prefix: string[] = []) =>
    execa('ip', ['netns', 'exec', ns, ...prefix, process.execPath, CLI, '--interface', 'br0', '--listen', `/tmp/${ns}.sock`, ...args], { reject: false });
  beforeAll(() => execa('ip', ['netns', 'add', ns]));
  afterAll(() => execa('ip', ['netns', 'del', ns], { reject: false }));

  it('explains a missing DOCKER-USER chain to --backend iptables (auto takes nftables there)', async () => {
    expectOneLine(await inNs(['--backend', 'iptables', 'a.test']), /DOCKER-USER chain does not exist: start Docker.*--backend nftables.*iptables -N DOCKER-USER/);
  });

  it('explains that iptables needs root', async () => {
    expectOneLine(await inNs(['a.test'], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']), /run on-his-name as root/);
  });
});
