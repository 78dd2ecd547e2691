/**
 * For benchmarks that touch a firewall: run this same script again inside a fresh network
 * namespace (with `--inside` added to its arguments), and remove the namespace afterwards,
 * whatever happens. The namespace has no route out; the script sets up what it needs.
 */
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const INSIDE = '--inside';

export function isInside(): boolean {
  return process.argv.includes(INSIDE);
}

/** `script` is the caller's import.meta.url; `args` its own arguments. Sets the exit code. */
export async function rerunInNamespace(prefix: string, script: string, args: readonly string[]): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark builds a network namespace');
  const ns = `${prefix}-${process.pid}`;
  await execa('ip', ['netns', 'add', ns]);
  try {
    const child = await execa('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', fileURLToPath(script), ...args, INSIDE], { stdio: 'inherit', reject: false });
    if (child.exitCode !== 0) process.exitCode = child.exitCode ?? 1;
  } finally {
    await execa('ip', ['netns', 'del', ns], { reject: false });
  }
}
