/**
 * Suites that need a command-line tool run where it is installed and skip elsewhere,
 * saying which tool is missing and which Debian package provides it.
 */
import { spawnSync } from 'node:child_process';

/**
 * Whether `command` can be run here. Only a failure to start it counts (ENOENT: not
 * installed); its exit status does not, since tools disagree on what --help returns.
 */
export function hasCommand(command: string, args: readonly string[] = ['--help']): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).error === undefined;
}

/** For a suite's title: '' when `command` is there, else why the suite is skipped and how to run it. */
export function missingNote(command: string, debianPackage: string): string {
  return hasCommand(command) ? '' : ` (skipped: ${command} not found; apt-get install ${debianPackage})`;
}
