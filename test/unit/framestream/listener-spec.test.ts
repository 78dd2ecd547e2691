/**
 * The Frame Streams edge cases on a real Unix socket, each checked against the spec
 * (fstrm/control.h) and fstrm's reader: how the broken producer's connection ends, what it
 * is told, the log line an operator sees, and that a well-behaved producer connected at the
 * same time loses nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeControl, encodeData } from '../../../src/framestream/control.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { listenFrameStreams, type FrameStreamListener } from '../../../src/framestream/listener.js';
import { SUMMARY_INTERVAL_MS } from '../../../src/util/log-summary.js';
import { FakeClock } from '../../support/clock.js';
import { recordingLogger } from '../../support/log.js';
import { connectProducer, until } from '../../support/socket.js';
import { hasCommand, missingNote } from '../../support/tools.js';

let dir: string;
let listener: FrameStreamListener;
let received: string[];
/** The listener's summaries of repeated warnings, and a refused producer's grace, wait on this. */
let clock: FakeClock;
const { log, lines } = recordingLogger();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ohn-spec-'));
  received = [];
  lines.length = 0;
  clock = new FakeClock();
  listener = await listenFrameStreams({
    path: join(dir, 'dnstap.sock'),
    log,
    clock,
    onData: (payload, producer) => received.push(`${producer.id}:${payload.toString()}`),
  });
});
afterEach(async () => {
  await listener.close();
  await rm(dir, { recursive: true, force: true });
});

const control = (type: number, contentTypes: string[] = []) => encodeControl(type as ControlType, contentTypes);
const START = control(ControlType.START, [DNSTAP_CONTENT_TYPE]);
const READY = control(ControlType.READY, [DNSTAP_CONTENT_TYPE]);
const STOP = control(ControlType.STOP);
const data = (text: string) => encodeData(Buffer.from(text));
/** A control frame of `payloadBytes` bytes, by hand: encodeControl refuses to write one over 512. */
function bigControl(payloadBytes: number): Buffer {
  const out = Buffer.alloc(8 + payloadBytes, 0x78);
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(payloadBytes, 4);
  out.writeUInt32BE(0x42, 8);
  return out;
}
const GOOD_FRAMES = 50;

interface Case {
  /** What the broken producer writes, one write per element. */
  writes: Buffer[];
  /** Ends its side after writing (a disconnect). */
  hangUp?: boolean;
  /** Keeps writing after the reader has ended its side: each write after the first waits until it has. */
  halfOpen?: boolean;
  /** Exactly what it reads back before its connection ends. */
  reply: Buffer;
  /** Payloads of its that are delivered. */
  delivered: string[];
  log: { level: 'warn' | 'info'; msg: RegExp; reason?: RegExp };
  /** The connection stays open (the spec says to ignore what it sent). */
  staysOpen?: boolean;
}

const cases: Record<string, Case> = {
  'a producer that disconnects in the middle of a frame': {
    writes: [Buffer.concat([START, data('whole'), data('cut short').subarray(0, 7)])],
    hangUp: true,
    reply: Buffer.alloc(0),
    delivered: ['whole'],
    log: { level: 'warn', msg: /disconnected in the middle of a frame/ },
  },
  'STOP before START': {
    writes: [STOP],
    reply: Buffer.alloc(0),
    delivered: [],
    log: { level: 'warn', msg: /protocol error/, reason: /STOP control frame out of order \(phase initial\)/ },
  },
  'STOP right after START (an early, empty stream)': {
    writes: [Buffer.concat([START, STOP])],
    reply: Buffer.alloc(0),
    delivered: [],
    log: { level: 'info', msg: /^listening/ }, // nothing to warn about: an empty stream is a stream
  },
  'an unknown control type before START': {
    writes: [control(0x42)],
    reply: Buffer.alloc(0),
    delivered: [],
    log: { level: 'warn', msg: /protocol error/, reason: /unexpected unknown\(0x42\) control frame/ },
  },
  'an unknown control type inside the stream (ignored, as the spec asks)': {
    writes: [Buffer.concat([START, data('before'), control(0x42), data('after')])],
    reply: Buffer.alloc(0),
    delivered: ['before', 'after'],
    log: { level: 'info', msg: /does not define/ },
    staysOpen: true,
  },
  'a control frame over 512 bytes': {
    writes: [Buffer.concat([START, bigControl(513)])],
    reply: Buffer.alloc(0),
    delivered: [],
    log: { level: 'warn', msg: /protocol error/, reason: /control frame of 513 bytes exceeds the 512-byte limit/ },
  },
  'READY offering only other content types': {
    writes: [control(ControlType.READY, ['protobuf:other', 'json:dnstap'])],
    reply: control(ControlType.ACCEPT),
    delivered: [],
    log: { level: 'warn', msg: /does not offer the dnstap content type/, reason: /"protobuf:other", "json:dnstap".*only "protobuf:dnstap.Dnstap"/ },
  },
  'START with a different content type': {
    writes: [control(ControlType.START, ['protobuf:other'])],
    reply: Buffer.alloc(0),
    delivered: [],
    log: { level: 'warn', msg: /protocol error/, reason: /starts content type "protobuf:other".*only "protobuf:dnstap.Dnstap"/ },
  },
  'a second START': {
    writes: [Buffer.concat([READY, START, data('one'), START, data('two')])],
    reply: control(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]),
    delivered: ['one'],
    log: { level: 'warn', msg: /protocol error/, reason: /START control frame out of order \(phase started\)/ },
  },
  'data after STOP, in the same write': {
    writes: [Buffer.concat([READY, START, data('in'), STOP, data('out')])],
    reply: Buffer.concat([control(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]), control(ControlType.FINISH)]),
    delivered: ['in'],
    log: { level: 'warn', msg: /protocol error/, reason: /frame after STOP/ },
  },
  'data after STOP, in a later write': {
    writes: [Buffer.concat([START, data('in'), STOP]), data('out')],
    halfOpen: true,
    hangUp: true,
    reply: Buffer.alloc(0),
    delivered: ['in'],
    log: { level: 'warn', msg: /protocol error/, reason: /frame after STOP/ },
  },
  'FINISH from a producer': {
    writes: [Buffer.concat([START, data('in'), control(ControlType.FINISH)])],
    reply: Buffer.alloc(0),
    delivered: ['in'],
    log: { level: 'warn', msg: /protocol error/, reason: /unexpected FINISH control frame from a producer/ },
  },
};

const LEVEL = { info: 30, warn: 40 };

describe('Frame Streams edge cases on a real socket', () => {
  it.each(Object.entries(cases))('%s', async (_, c) => {
    const good = await connectProducer(listener.path);
    await good.write(READY);
    await until(() => good.received().length > 0);
    const bad = await connectProducer(listener.path, { allowHalfOpen: c.halfOpen ?? false });
    const readerEnded = new Promise<void>((resolve) => bad.socket.once('end', () => resolve()));
    for (const [i, bytes] of c.writes.entries()) {
      if (i > 0 && c.halfOpen) await readerEnded; // a later write: the reader has read the first and ended its side
      if (bad.socket.destroyed) break;
      await bad.write(bytes);
    }
    if (c.hangUp) bad.socket.end();
    if (c.staysOpen) {
      await until(() => received.filter((r) => r.startsWith('2:')).length === c.delivered.length);
      expect(bad.socket.readyState).toBe('open');
      bad.socket.destroy();
    }
    await bad.closed;

    await good.write(Buffer.concat([START, ...Array.from({ length: GOOD_FRAMES }, (_, i) => data(`good ${i}`)), STOP]));
    await good.closed;
    expect(good.received()).toEqual(Buffer.concat([control(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]), control(ControlType.FINISH)]));
    expect(received.filter((r) => r.startsWith('1:'))).toEqual(Array.from({ length: GOOD_FRAMES }, (_, i) => `1:good ${i}`));

    expect(bad.received()).toEqual(c.reply);
    expect(received.filter((r) => r.startsWith('2:'))).toEqual(c.delivered.map((d) => `2:${d}`));
    const line = lines.find((l) => c.log.msg.test(l.msg));
    expect(line, `a log line matching ${c.log.msg}`).toBeDefined();
    expect(line!.level).toBe(LEVEL[c.log.level]);
    if (c.log.reason) expect(line!.reason).toMatch(c.log.reason);
    if (c.log.level === 'info') expect(lines.filter((l) => l.level >= LEVEL.warn)).toEqual([]);
  });
});

const hasFstrmReplay = hasCommand('fstrm_replay');

describe.skipIf(!hasFstrmReplay)(`fstrm's own writer (fstrm_replay)${missingNote('fstrm_replay', 'fstrm-bin')}`, () => {
  const replay = (contentType: string) =>
    execa('fstrm_replay', ['-t', contentType, '-u', listener.path, '-r', 'test/fixtures/unbound.fstrm'], { reject: false, timeout: 10_000 });

  it('streams a capture through the bidirectional handshake', async () => {
    expect((await replay(DNSTAP_CONTENT_TYPE)).exitCode).toBe(0);
    await until(() => received.length === 14);
    expect(listener.stats.protocolErrors).toBe(0);
  });

  it('gives up on its own after our bare ACCEPT when it offers another content type, with one clear warning', async () => {
    await replay('protobuf:other');
    await until(() => lines.some((l) => l.msg.includes('does not offer the dnstap content type')));
    // fstrm_replay has exited, so its connection's end was in the kernel before this producer
    // connected: by the time the listener answers this READY, it has read that end.
    const after = await connectProducer(listener.path);
    await after.write(READY);
    await until(() => after.received().length > 0);
    after.socket.destroy();
    await clock.advance(SUMMARY_INTERVAL_MS); // and a warning held back for a summary would be out now
    expect(received).toEqual([]);
    expect(lines.filter((l) => l.level >= 40).map((l) => [l.msg, l.expected])).toEqual([
      ['closing producer connection: it does not offer the dnstap content type', DNSTAP_CONTENT_TYPE],
    ]);
  });
});
