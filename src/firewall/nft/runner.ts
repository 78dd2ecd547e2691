/**
 * The nft runner: the only place that execs nft. Reads go through `nft -j list table`;
 * changes go to one long-lived `nft -i` (interactive: each input line is one transaction),
 * each batch followed by `describe meta mark`, whose fixed answer comes back only once the
 * line before it ran (acked-pipe.ts), or with `persistent: false` to one `nft -f -` per batch.
 * bench/RESULTS.md ("nftables: long-lived or one exec per batch") says why the default is
 * the long-lived process.
 */
import { execa, type ExecaError } from 'execa';
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
      // One line, one transaction: the commands of a batch are joined with ';'.
      const line = script.split('\n').filter(Boolean).join('; ');
      let errors: string[];
      try {
        errors = await pipe.send(line, timeoutMs);
      } catch (err) {
        throw new ApplyError(`${binary} failed: ${(err as Error).message}`, { cause: err });
      }
      if (errors.length) throw new ApplyError(`${binary} failed: ${errors[0]}`, { stderr: errors.join('\n') });
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
    close: () => pipe?.close(),
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
