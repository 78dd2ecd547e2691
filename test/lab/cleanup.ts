/**
 * Last-resort cleanup for labs: whatever a lab creates (namespaces, temporary directories)
 * is registered here, and removed synchronously if the process exits or is killed with
 * SIGINT/SIGTERM/SIGHUP before the lab's own close() ran. A lab's close() unregisters what
 * it removed, so normally this does nothing.
 *
 * Signal handlers are installed only while something is registered, and after cleaning up
 * the signal is re-raised with its default action when nobody else listens for it, so a
 * Ctrl-C still ends the process.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

export type SyncCleanup = () => void;

const pending = new Set<SyncCleanup>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let installed = false;

/** Runs `cleanup` at exit unless the returned function is called first (which does not run it). */
export function onExit(cleanup: SyncCleanup): () => void {
  pending.add(cleanup);
  install();
  return () => {
    pending.delete(cleanup);
    if (pending.size === 0) uninstall();
  };
}

/** Kill every process in the namespace and delete it, synchronously. Never throws. */
export function removeNamespaceSync(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' });
  for (const pid of String(pids.stdout ?? '').split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  spawnSync('ip', ['netns', 'del', name]);
}

export function removeDirectorySync(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

function runAll(): void {
  for (const cleanup of [...pending].reverse()) {
    try {
      cleanup();
    } catch {
      // keep going: the next cleanup may still succeed
    }
  }
  pending.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  uninstall();
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', runAll);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}
