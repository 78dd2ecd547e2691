import { describe, expect, it } from 'vitest';
import { encodeControl, type ControlFrame } from '../../../src/framestream/control.js';
import { INITIAL_HANDSHAKE, acceptsData, stepHandshake, type HandshakeState } from '../../../src/framestream/handshake.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../../src/framestream/limits.js';
import { ProtocolError } from '../../../src/util/errors.js';

const ready: ControlFrame = { type: ControlType.READY, contentTypes: ['other', DNSTAP_CONTENT_TYPE] };
const start: ControlFrame = { type: ControlType.START, contentTypes: [DNSTAP_CONTENT_TYPE] };
const stop: ControlFrame = { type: ControlType.STOP, contentTypes: [] };

function run(frames: ControlFrame[], state: HandshakeState = INITIAL_HANDSHAKE) {
  const replies: (Buffer | undefined)[] = [];
  let closed = false;
  for (const frame of frames) {
    const step = stepHandshake(state, frame);
    state = step.state;
    replies.push(step.reply);
    closed = step.close;
  }
  return { state, replies, closed };
}

describe('stepHandshake', () => {
  it('answers READY with ACCEPT echoing the dnstap content type, and STOP with FINISH', () => {
    const { state, replies, closed } = run([ready, start, stop]);
    expect(replies).toEqual([
      encodeControl(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]),
      undefined,
      encodeControl(ControlType.FINISH),
    ]);
    expect(state).toEqual({ phase: 'stopped', bidirectional: true });
    expect(closed).toBe(true);
  });

  it('takes the unidirectional form: START, data, STOP, no replies', () => {
    const started = run([start]);
    expect(acceptsData(started.state)).toBe(true);
    const { replies, closed } = run([stop], started.state);
    expect(replies).toEqual([undefined]);
    expect(closed).toBe(true);
  });

  it('accepts READY and START that leave the content type unspecified', () => {
    expect(run([{ type: ControlType.READY, contentTypes: [] }, { type: ControlType.START, contentTypes: [] }]).state.phase).toBe(
      'started',
    );
  });

  it('answers a READY without our content type as fstrm does: an ACCEPT naming none, then close, saying why', () => {
    const step = stepHandshake(INITIAL_HANDSHAKE, { type: ControlType.READY, contentTypes: ['protobuf:other'] });
    expect(step.reply).toEqual(encodeControl(ControlType.ACCEPT));
    expect(step.close).toBe(true);
    expect(step.refused).toMatch(/"protobuf:other".*"protobuf:dnstap.Dnstap"/);
    expect(acceptsData(step.state)).toBe(false);
  });

  it('refuses a START with another content type, naming both', () => {
    expect(() => run([{ type: ControlType.START, contentTypes: ['protobuf:other'] }])).toThrow(ProtocolError);
    expect(() => run([ready, { type: ControlType.START, contentTypes: ['protobuf:other'] }])).toThrow(/"protobuf:other".*"protobuf:dnstap.Dnstap"/);
  });

  it('ignores control types the spec does not define inside the stream, as the spec asks', () => {
    const { state, replies, closed } = run([start, { type: 0x42, contentTypes: [] }]);
    expect(state.phase).toBe('started');
    expect(replies).toEqual([undefined, undefined]);
    expect(closed).toBe(false);
    expect(stepHandshake(state, { type: 0x42, contentTypes: [] }).ignored).toBe(true);
  });

  it.each([
    ['STOP before START', [stop]],
    ['READY twice', [ready, ready]],
    ['READY after START', [start, ready]],
    ['an ACCEPT from the producer', [{ type: ControlType.ACCEPT, contentTypes: [] }]],
    ['a FINISH from the producer', [start, { type: ControlType.FINISH, contentTypes: [] }]],
    ['an unknown control type before START', [{ type: 0x42, contentTypes: [] }]],
    ['a second START', [start, start]],
    ['STOP twice', [start, stop, stop]],
    ['STOP after READY, before START', [ready, stop]],
  ])('refuses %s', (_, frames) => {
    expect(() => run(frames as ControlFrame[])).toThrow(ProtocolError);
  });

  it('accepts data only between START and STOP', () => {
    expect(acceptsData(INITIAL_HANDSHAKE)).toBe(false);
    expect(acceptsData(run([ready]).state)).toBe(false);
    expect(acceptsData(run([ready, start]).state)).toBe(true);
    expect(acceptsData(run([ready, start, stop]).state)).toBe(false);
  });
});
