/**
 * --listen tcp:// with a real Frame Streams writer: Debian's fstrm_replay (fstrm-bin, the
 * C library's own tool, speaking the bidirectional handshake over TCP) pushes the capture
 * recorded from unbound (test/fixtures/unbound.fstrm) into the daemon, which opens the
 * allowed answers in a fake kernel. Needs no root; skips when fstrm_replay is missing.
 */
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { DNSTAP_CONTENT_TYPE } from '../../src/framestream/limits.js';
import { fakeIptables } from '../support/iptables.js';
import { recordingLogger } from '../support/log.js';
import { until } from '../support/socket.js';
import { hasCommand, missingNote } from '../support/tools.js';

const CAPTURE = fileURLToPath(new URL('../fixtures/unbound.fstrm', import.meta.url));
const hasFstrmReplay = hasCommand('fstrm_replay');
const note = missingNote('fstrm_replay', 'fstrm-bin');

let daemon: Daemon | undefined;
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
});

/** A port the kernel just handed out and took back: free for the next bind, barring a race we can live with in a test. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

describe.skipIf(!hasFstrmReplay)(`--listen tcp:// fed by the real fstrm_replay${note}`, () => {
  it('reads the unbound capture pushed over TCP and opens the allowed answers', async () => {
    const port = await freePort();
    const kernel = fakeIptables();
    const { log, lines } = recordingLogger();
    const config = parseConfig(['--interface', 'br0', '--listen', `tcp://:${port}`, 'allowed.test.', 'multi.test.'], {});
    daemon = await startDaemon(config, { runner: kernel.runner, log });
    expect(lines.find((l) => l.msg === 'listening for dnstap over TCP')).toMatchObject({ address: `tcp://127.0.0.1:${port}` });

    const replay = await execa('fstrm_replay', ['-t', DNSTAP_CONTENT_TYPE, '-a', '127.0.0.1', '-p', String(port), '-r', CAPTURE], { reject: false, timeout: 10_000 });
    expect(replay.exitCode, String(replay.stderr)).toBe(0);
    const seen = () => Object.values(daemon!.stats.decisions).reduce((a, b) => a + b, 0);
    await until(() => seen() === 14); // the capture's 14 dnstap messages: queries and responses
    await daemon.firewall.settled();

    const opened = kernel.chain.map((l) => /-d (\S+)\/32 .*--dport 443/.exec(l)?.[1]).filter(Boolean).sort();
    expect(opened).toEqual(['198.51.100.10', '198.51.100.11', '198.51.100.12']);
    expect(daemon.stats.decisions).toMatchObject({ allow: 2 });
    expect(daemon.listener?.stats).toMatchObject({ connections: 1, dataFrames: 14, protocolErrors: 0 });
  });
});
