/**
 * The few error classes a caller branches on. Each keeps the original error as `cause`.
 *
 * - ConfigError: the operator must fix something (a flag, a pattern, a missing network).
 *   The CLI prints its message as one line, with no stack trace, and exits non-zero.
 * - ProtocolError: a producer broke the Frame Streams or dnstap rules; it closes that one
 *   connection, never the daemon.
 * - ApplyError: the kernel refused a firewall change; carries the command's stderr so the
 *   log says why, and the change is retried.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class ApplyError extends Error {
  override readonly name = 'ApplyError';
  readonly stderr: string;
  readonly exitCode: number | undefined;
  constructor(message: string, details: { stderr?: string; exitCode?: number; cause?: unknown }) {
    super(message, { cause: details.cause });
    this.stderr = details.stderr ?? '';
    this.exitCode = details.exitCode;
  }
}

/**
 * Bytes that are not what they claim to be (a dnstap message, a DNS message, an address).
 * The pipeline counts it, logs why, and skips that one message.
 */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
