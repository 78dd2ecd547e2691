/**
 * A helper process inside a lab namespace (a fake server, an attacker's script, a probe),
 * with what it prints collected line by line, JSON lines parsed. Bounded waits only: every
 * wait names what it waited for and what the process said when it gives up.
 */
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';
import type { Namespace } from './netns.js';

/** Where `--import tsx` resolves from. */
export const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

export type Line = Record<string, unknown>;

export interface NsProcess {
  pid: number | undefined;
  /** Every line printed so far; JSON lines parsed, others as { text }. */
  lines: Line[];
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  /** The first line (already printed or still to come) that `match` accepts. */
  waitForLine(match: (line: Line) => boolean, timeoutMs: number, what?: string): Promise<Line>;
  /** The exit code once it has exited (undefined when killed by a signal). */
  exited: Promise<number | undefined>;
  /** Whether it has exited yet. */
  readonly running: boolean;
  /** SIGTERM (SIGKILL after 3 s) and wait for it. Safe to call twice. */
  stop(): Promise<void>;
}

/** `command args…` in `namespace`, e.g. (ns, [process.execPath, SCRIPT, …]). */
export function startInNamespace(namespace: Namespace | string, command: readonly string[]): NsProcess {
  const name = typeof namespace === 'string' ? namespace : namespace.name;
  const child: ResultPromise = execa('ip', ['netns', 'exec', name, ...command], { reject: false, buffer: false, cwd: REPOSITORY });
  const lines: Line[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    partial += chunk.toString();
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      try {
        const parsed: unknown = JSON.parse(text);
        lines.push(typeof parsed === 'object' && parsed !== null ? (parsed as Line) : { text });
      } catch {
        lines.push({ text });
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let running = true;
  const exited = child.then((result) => {
    running = false;
    return result.exitCode;
  });
  const output = () => `${stdout.length > 4000 ? `…${stdout.slice(-4000)}` : stdout}${stderr}`;
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    lines,
    output,
    exited,
    get running() {
      return running;
    },
    async waitForLine(match, timeoutMs, what = 'the expected line') {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(match);
        if (found) return found;
        if (!running) throw new Error(`${command.join(' ')} exited before ${what}:\n${output()}`);
        if (Date.now() > deadline) throw new Error(`no ${what} from ${command.join(' ')} within ${timeoutMs} ms:\n${output()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    stop: () =>
      (stopping ??= (async () => {
        if (running) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
          await exited;
          clearTimeout(timer);
        }
      })()),
  };
}

/** A node script (.mjs, or .ts through tsx) in `namespace`, resolved once it printed "ready". */
export async function startReady(namespace: Namespace | string, script: string, args: readonly string[], timeoutMs = 15_000): Promise<NsProcess> {
  const tsx = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = startInNamespace(namespace, [process.execPath, ...tsx, script, ...args]);
  try {
    await child.waitForLine((line) => line.text === 'ready', timeoutMs, `"ready"`);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}

/** Poll `read` until `done` accepts its value; the last value, or an error naming `what` after `timeoutMs`. */
export async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last seen: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
