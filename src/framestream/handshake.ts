/**
 * The reader's side of the Frame Streams handshake as a pure step function:
 * (state, control frame) → next state and the reply to write, or a ProtocolError.
 *
 *   bidirectional:  READY → (ACCEPT) → START → data… → STOP → (FINISH), close
 *   unidirectional: START → data… → STOP, close
 *
 * As in the spec (fstrm/control.h) and fstrm's reader: a READY that offers no content type
 * we read gets an ACCEPT naming none, which tells the producer to give up; a START with
 * another content type, a second START, STOP before START, and READY, ACCEPT or FINISH
 * from a producer end the connection; control types the spec does not define are
 * ignored inside the stream ("for forward compatibility … must be ignored") and refused
 * before it.
 */
import { ProtocolError } from '../util/errors.js';
import { encodeControl, type ControlFrame } from './control.js';
import { ControlType, DNSTAP_CONTENT_TYPE, controlTypeName } from './limits.js';

/** 'refused': READY offered no content type we read; whatever the producer sends next is moot. */
export type Phase = 'initial' | 'accepted' | 'started' | 'stopped' | 'refused';

export interface HandshakeState {
  phase: Phase;
  bidirectional: boolean;
}

export interface HandshakeStep {
  state: HandshakeState;
  /** Bytes to write back to the producer, if any. */
  reply?: Buffer;
  /** The stream is over: write the reply, then close the connection. */
  close: boolean;
  /** Why the producer's stream was turned down (with close), for the log. */
  refused?: string;
  /** A control frame of a type the spec has not defined, skipped inside the stream. */
  ignored?: boolean;
}

export const INITIAL_HANDSHAKE: HandshakeState = { phase: 'initial', bidirectional: false };

const ACCEPT_DNSTAP = encodeControl(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]);
const ACCEPT_NOTHING = encodeControl(ControlType.ACCEPT);
const DEFINED_TYPES = new Set<number>(Object.values(ControlType));
const FINISH = encodeControl(ControlType.FINISH);

export function stepHandshake(state: HandshakeState, frame: ControlFrame): HandshakeStep {
  switch (frame.type) {
    case ControlType.READY:
      expectPhase(state, frame, 'initial');
      if (!offersDnstap(frame)) {
        return { state: { phase: 'refused', bidirectional: true }, reply: ACCEPT_NOTHING, close: true, refused: wrongContentType(frame, 'offers') };
      }
      return { state: { phase: 'accepted', bidirectional: true }, reply: ACCEPT_DNSTAP, close: false };
    case ControlType.START:
      if (state.phase !== 'initial' && state.phase !== 'accepted') expectPhase(state, frame, 'accepted');
      if (!offersDnstap(frame)) throw new ProtocolError(wrongContentType(frame, 'starts'));
      return { state: { ...state, phase: 'started' }, close: false };
    case ControlType.STOP:
      expectPhase(state, frame, 'started');
      return {
        state: { ...state, phase: 'stopped' },
        ...(state.bidirectional ? { reply: FINISH } : {}),
        close: true,
      };
    default:
      if (state.phase === 'started' && !DEFINED_TYPES.has(frame.type)) return { state, close: false, ignored: true };
      throw new ProtocolError(
        `unexpected ${controlTypeName(frame.type)} control frame from a producer (phase ${state.phase})`,
      );
  }
}

/** Data frames are only valid between START and STOP. */
export function acceptsData(state: HandshakeState): boolean {
  return state.phase === 'started';
}

function expectPhase(state: HandshakeState, frame: ControlFrame, phase: Phase): void {
  if (state.phase !== phase) {
    throw new ProtocolError(`${controlTypeName(frame.type)} control frame out of order (phase ${state.phase})`);
  }
}

/** An empty list means "unspecified", which the spec allows; anything else must include ours. */
function offersDnstap(frame: ControlFrame): boolean {
  return frame.contentTypes.length === 0 || frame.contentTypes.includes(DNSTAP_CONTENT_TYPE);
}

function wrongContentType(frame: ControlFrame, verb: string): string {
  return (
    `producer ${verb} content type ${frame.contentTypes.map((c) => JSON.stringify(c)).join(', ')}; ` +
    `on-his-name reads only "${DNSTAP_CONTENT_TYPE}" (configure the DNS server's dnstap output)`
  );
}
