/** Frame Streams protocol constants and the limits this reader enforces. */

/** A data frame length of zero announces a control frame (the "escape"). */
export const CONTROL_ESCAPE = 0;

export const ControlType = {
  ACCEPT: 0x01,
  START: 0x02,
  STOP: 0x03,
  READY: 0x04,
  FINISH: 0x05,
} as const;
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

export const CONTROL_FIELD_CONTENT_TYPE = 0x01;

/** The only content type we speak; producers that offer nothing else are refused. */
export const DNSTAP_CONTENT_TYPE = 'protobuf:dnstap.Dnstap';

/**
 * Largest data frame we buffer. A DNS message is at most 64 KiB and dnstap carries at most
 * a query and a response, so 1 MiB leaves room for any honest producer while a hostile
 * length prefix can never make us allocate more than this.
 */
export const MAX_DATA_FRAME_BYTES = 1024 * 1024;

/** The Frame Streams spec caps control frames at 512 bytes; anything larger is a protocol error. */
export const MAX_CONTROL_FRAME_BYTES = 512;

export function controlTypeName(type: number): string {
  for (const [name, value] of Object.entries(ControlType)) if (value === type) return name;
  return `unknown(0x${type.toString(16)})`;
}
