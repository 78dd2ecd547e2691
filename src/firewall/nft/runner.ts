/**
 * The nft runner: the only place that execs nft. Reads go through `nft -j list table`;
 * changes go to one long-lived `nft -i` (interactive: each input line is one transaction),
 * each batch followed by `describe meta mark`, whose fixed answer comes back only once the
 * line before it ran (acked-pipe.ts), or with `persistent: false` to one `nft -f -` per batch.
 *
 * nft -i reads its input through libedit, one read() a byte: about 45 µs an element, so a
 * batch of more than a few elements is written to a file of its own in a private directory
 * and the line sent is `include "FILE"`, which nft reads whole and still runs as one
 * transaction. bench/RESULTS.md ("The three backends side by side") has the figures and
 * says why the default is the long-lived process.
 */
import { execa, type ExecaError } from 'execa';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplyError, ConfigError } from '../../util/errors.js';
import { AckedPipe } from '../acked-pipe.js';
import { FAMILY, TABLE } from './render.js';

export interface NftRunner {
  /** `nft -j list table inet on-his-name`, or undefined when there is no such table. */
  list(): Promise<string | undefined>;
  /** `nft -j list set inet on-his-name SET`, or undefined when there is no such set. */
  listSet(set: string): Promise<string | undefined>;
  /** All of `script` (nft -f syntax) in one transaction, failing after `timeoutMs`. Throws ApplyError. */
  apply(script: string, options?: { timeoutMs?: number }): Promise<void>;
  /** `delete table inet on-his-name`; false when there was none. */
  deleteTable(): Promise<boolean>;
  close(): void;
}

export interface NftRunnerOptions {
  nft?: string;
  /** A command to run nft through, e.g. ['ip', 'netns', 'exec', 'lab'] in tests. */
  prefix?: readonly string[];
  persistent?: boolean;
}

const ACK_REQUEST = 'describe meta mark';
const ACK = /^meta expression, datatype mark/;
const DEFAULT_TIMEOUT_MS = 5_000;
const NO_SUCH_TABLE = /No such file or directory/;
/**
 * Longer batches go to nft -i as an included file: read a byte at a time, a line costs about
 * 0.75 µs a byte; an include costs about half a millisecond more than a short line, and
 * nothing a byte (bench/RESULTS.md).
 */
const INCLUDE_ABOVE_BYTES = 1024;

export function nftRunner(options: NftRunnerOptions = {}): NftRunner {
  const binary = options.nft ?? 'nft';
  const prefix = options.prefix ?? [];
  const run = (args: string[], input?: string, timeoutMs?: number) => {
    const [command, ...rest] = [...prefix, binary, ...args];
    return execa(command!, rest, { ...(input === undefined ? {} : { input }), ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) });
  };
  // Line-buffered output: nft's stdout is a pipe here, which stdio would otherwise hold back.
  const pipe = options.persistent
    ? new AckedPipe({ argv: [...prefix, 'stdbuf', '-oL', binary, '-i'], ackRequest: () => ACK_REQUEST, isAck: (line) => ACK.test(line) })
    : undefined;
  // Made on the first long batch, mode 0700: nobody else may write what nft will run.
  let batchDir: Promise<string> | undefined;
  let dir: string | undefined;
  let batches = 0;
  /** The line that makes nft -i run `script` as one transaction, and the file to remove once it has. */
  const lineFor = async (script: string): Promise<{ line: string; file?: string }> => {
    // One line, one transaction: the commands of a short batch are joined with ';'.
    const line = { line: script.split('\n').filter(Boolean).join('; ') };
    if (script.length <= INCLUDE_ABOVE_BYTES) return line;
    try {
      dir ??= await (batchDir ??= mkdtemp(join(tmpdir(), 'on-his-name-nft-')));
      // A file per batch: the IPv4 and IPv6 firewalls share this runner and may send at once.
      const file = join(dir, `batch-${++batches}.nft`);
      await writeFile(file, script, { mode: 0o600 });
      return { line: `include "${file}"`, file };
    } catch {
      [dir, batchDir] = [undefined, undefined]; // no room for a file (a read-only /tmp?): slower, but the same transaction
      return line;
    }
  };
  const listing = async (what: string[]) => {
    try {
      return (await run(['-j', 'list', ...what])).stdout;
    } catch (err) {
      if (NO_SUCH_TABLE.test(String((err as ExecaError).stderr))) return undefined;
      throw explain(err as ExecaError, binary);
    }
  };
  return {
    list: () => listing(['table', FAMILY, TABLE]),
    listSet: (set) => listing(['set', FAMILY, TABLE, set]),
    async apply(script, applyOptions = {}) {
      if (!script) return;
      const timeoutMs = applyOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (!pipe) {
        try {
          await run(['-f', '-'], script, timeoutMs);
        } catch (err) {
          throw explain(err as ExecaError, binary);
        }
        return;
      }
      const { line, file } = await lineFor(script);
      let errors: string[];
      try {
        errors = await pipe.send(line, timeoutMs);
      } catch (err) {
        throw new ApplyError(`${binary} failed: ${(err as Error).message}`, { cause: err });
      } finally {
        if (file) await rm(file, { force: true });
      }
      // From an included file nft says "In file included from …" first: the error is the line after.
      const error = errors.find((e) => e.includes('Error:')) ?? errors[0];
      if (errors.length) throw new ApplyError(`${binary} failed: ${error}`, { stderr: errors.join('\n') });
    },
    async deleteTable() {
      try {
        await run(['delete', 'table', FAMILY, TABLE]);
        return true;
      } catch (err) {
        if (NO_SUCH_TABLE.test(String((err as ExecaError).stderr))) return false;
        throw explain(err as ExecaError, binary);
      }
    },
    close() {
      pipe?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      [dir, batchDir] = [undefined, undefined];
    },
  };
}

/** Turn the failures an operator can fix into one clear ConfigError line. */
function explain(err: ExecaError, binary: string): Error {
  const stderr = String(err.stderr ?? '');
  if (err.code === 'ENOENT') return new ConfigError(`${binary} not found: install it (apt-get install nftables)`, { cause: err });
  if (/Operation not permitted|permission denied/i.test(stderr)) {
    return new ConfigError(`${binary} was refused permission: run on-his-name as root (it needs CAP_NET_ADMIN)`, { cause: err });
  }
  return new ApplyError(`${binary} failed: ${stderr.split('\n')[0]?.trim() || err.shortMessage}`, {
    stderr,
    ...(err.exitCode !== undefined ? { exitCode: err.exitCode } : {}),
    cause: err,
  });
}
