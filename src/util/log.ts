/** pino, JSON by default and readable on a terminal; each component logs through its own child. */
import { pino, type Logger } from 'pino';

export type { Logger };
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** auto: pretty on a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(level: LogLevel, format: LogFormat, isTTY = Boolean(process.stdout.isTTY)): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && isTTY);
  // No `name`: a decision's DNS name is its `name` field, and a JSON line must not hold the key twice.
  return pino({
    level,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
