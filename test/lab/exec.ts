/** Running lab commands: a failure names the command, its exit code and its stderr. */
import { execa, type Options, type ResultPromise } from 'execa';
import { rm } from 'node:fs/promises';

export async function run(command: string, args: readonly string[], options: Options = {}): Promise<string> {
  try {
    const { stdout } = await execa(command, args, options);
    return String(stdout);
  } catch (err) {
    const e = err as { stderr?: unknown; stdout?: unknown; exitCode?: number; shortMessage?: string };
    const detail = String(e.stderr ?? '').trim() || String(e.stdout ?? '').trim() || e.shortMessage || String(err);
    const code = e.exitCode === undefined ? '' : ` (exit ${e.exitCode})`;
    throw new Error(`${command} ${args.join(' ')} failed${code}: ${detail}`, { cause: err });
  }
}

/** `ip netns exec NAMESPACE command args…`. */
export function inNamespace(namespace: string, command: string, args: readonly string[], options: Options = {}): Promise<string> {
  return run('ip', ['netns', 'exec', namespace, command, ...args], options);
}

/**
 * stop() for a lab server: SIGTERM (SIGKILL after 5 s), then remove its directory and its
 * exit hook. Idempotent: every call after the first returns the first one's promise.
 */
export function stopper(child: ResultPromise, dir: string, unregister: () => void): () => Promise<void> {
  let stopped: Promise<void> | undefined;
  return () =>
    (stopped ??= (async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await child;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
      unregister();
    })());
}
