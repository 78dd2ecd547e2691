/**
 * Only the socket's owner may write dnstap to it: a real unprivileged user (via setpriv)
 * whose uid is --socket-uid connects and is heard; any other unprivileged uid gets EACCES.
 */
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeControl, encodeData } from '../../src/framestream/control.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../src/framestream/limits.js';
import { listenFrameStreams, type FrameStreamListener } from '../../src/framestream/listener.js';
import { recordingLogger } from '../support/log.js';
import { canUseNamespaces, skipNote } from '../support/root.js';
import { until } from '../support/socket.js';

const OWNER = 65534; // nobody
const STRANGER = 65533; // no account needed: setpriv sets the ids directly

/** A tiny producer: connect, send one unidirectional stream, print "sent" or the error code. */
const PRODUCER = `
const path = process.argv[1];
const stream = Buffer.from(process.argv[2], 'hex');
const socket = require('node:net').createConnection(path);
socket.on('connect', () => socket.end(stream, () => console.log('sent')));
socket.on('error', (err) => { console.log(err.code); process.exitCode = 1; });
`;

const stream = Buffer.concat([
  encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]),
  encodeData(Buffer.from('hello from uid')),
  encodeControl(ControlType.STOP),
]).toString('hex');

function produceAs(uid: number, path: string) {
  return execa('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e', PRODUCER, path, stream], { reject: false });
}

describe.skipIf(!canUseNamespaces())(`the dnstap socket is the owner's alone${skipNote()}`, () => {
  let dir: string;
  let listener: FrameStreamListener;
  const received: string[] = [];
  const { log } = recordingLogger();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohn-perm-'));
    // Both users may traverse the directory, so only the socket's own mode decides.
    await chmod(dir, 0o755);
    listener = await listenFrameStreams({
      path: join(dir, 'run', 'dnstap.sock'),
      socketUid: OWNER,
      socketGid: OWNER,
      log,
      onData: (payload) => received.push(payload.toString()),
    });
  });
  afterAll(async () => {
    await listener?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is owned by --socket-uid with mode 0600', async () => {
    const info = await stat(listener.path);
    expect({ uid: info.uid, gid: info.gid, mode: info.mode & 0o777 }).toEqual({ uid: OWNER, gid: OWNER, mode: 0o600 });
  });

  it('lets the owner (nobody) connect and be heard', async () => {
    const result = await produceAs(OWNER, listener.path);
    expect(result.stdout.trim()).toBe('sent');
    await until(() => received.length === 1);
    expect(received).toEqual(['hello from uid']);
  });

  it('refuses any other unprivileged user with EACCES, before a byte is read', async () => {
    const before = listener.stats.connections;
    const result = await produceAs(STRANGER, listener.path);
    expect(result.stdout.trim()).toBe('EACCES');
    expect(result.exitCode).toBe(1);
    expect(listener.stats.connections).toBe(before);
    expect(received).toEqual(['hello from uid']);
  });
});
