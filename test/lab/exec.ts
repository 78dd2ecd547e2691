/** Running lab commands: errors carry the command and its stderr. */
import { execa, type Options } from 'execa';

export async function run(command: string, args: readonly string[], options: Options = {}): Promise<string> {
  try {
    const { stdout } = await execa(command, args, options);
    return String(stdout);
  } catch (err) {
    const e = err as { stderr?: string; shortMessage?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.stderr || e.shortMessage}`, { cause: err });
  }
}

export function inNamespace(namespace: string, command: string, args: readonly string[], options: Options = {}): Promise<string> {
  return run('ip', ['netns', 'exec', namespace, command, ...args], options);
}
