/** Running lab commands: a failure names the command, its exit code and its stderr. */
import { execa, type Options } from 'execa';

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
