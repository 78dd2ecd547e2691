/** The real CLI as a child process, in a namespace, with its JSON log lines collected. */
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';

/** The CLI under test: this checkout's build, or another one's (ON_HIS_NAME_CLI=/path/to/dist/cli.js), e.g. an older release to show a test fails there. */
export const CLI = process.env.ON_HIS_NAME_CLI || fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliProcess {
  /** The CLI's own process (`ip netns exec` execs it). */
  pid: number | undefined;
  lines: Array<Record<string, unknown> & { msg: string }>;
  output: () => string;
  waitFor(predicate: (line: Record<string, unknown> & { msg: string }) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code once it has exited (undefined when a signal ended it). */
  exited: Promise<number | undefined>;
  /** What it wrote to stderr (the one-line user errors go there). */
  stderr(): string;
  /** Send `signal` (SIGHUP: read the policy file again); false once it has exited. */
  signal(signal: NodeJS.Signals): boolean;
  stop(): Promise<number | undefined>;
}

/** `wrapper` runs the CLI through a command, e.g. setpriv to bound its capabilities. */
export function startCli(namespace: string, args: string[], env: Record<string, string> = {}, wrapper: readonly string[] = []): CliProcess {
  const child: ResultPromise = execa('ip', ['netns', 'exec', namespace, ...wrapper, process.execPath, CLI, '--log-format', 'json', ...args], {
    reject: false,
    buffer: false,
    env,
    // execa's default SIGKILLs 5 s after a kill(): the daemon's own stop may take its 5 s grace
    // and more on a loaded machine, and a test that stops it wants its exit code, not ours.
    forceKillAfterDelay: 60_000,
  });
  const lines: CliProcess['lines'] = [];
  let raw = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
    let newline: number;
    while ((newline = raw.indexOf('\n')) >= 0) {
      const line = raw.slice(0, newline);
      raw = raw.slice(newline + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let exited: number | undefined | null = null;
  const done = child.then((r) => (exited = r.exitCode ?? undefined));

  return {
    pid: child.pid,
    lines,
    output: () => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`,
    exited: done,
    stderr: () => stderr,
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(predicate);
        if (found) return found;
        if (exited !== null) throw new Error(`on-his-name exited (${exited}) before the expected log line:\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms; log so far:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    signal: (signal) => exited === null && child.kill(signal),
    async stop() {
      if (exited === null) child.kill('SIGTERM');
      await done;
      return exited ?? undefined;
    },
  };
}
