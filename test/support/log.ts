/** A pino logger that records every line, so tests can assert on what was logged. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface RecordingLogger {
  log: Logger;
  lines: Array<Record<string, unknown> & { msg: string; level: number }>;
}

export function recordingLogger(level: pino.LevelWithSilent = 'debug'): RecordingLogger {
  const lines: RecordingLogger['lines'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}
