/**
 * The iptables runner: the only place that execs iptables. Everything above it deals in
 * listings and restore text, so unit tests pass a fake that records what it is given.
 */
import { execa, type ExecaError } from 'execa';
import { ApplyError, ConfigError } from '../util/errors.js';
import { AckedPipe } from './acked-pipe.js';
import { CHAIN } from './rules.js';

export interface IptablesRunner {
  /** `iptables -S`: the filter table's chains and rules, one a line. */
  list(): Promise<string[]>;
  /**
   * `iptables-restore --noflush`, all of `script` in one transaction, failing after
   * `timeoutMs` (default 5 s): a batch known to be slow (deletes deep in a long chain) says so.
   */
  restore(script: string, options?: { timeoutMs?: number }): Promise<void>;
  /** End a long-lived iptables-restore, if there is one. */
  close?(): void;
  /** `iptables-save -c -t filter`: every rule with its packet and byte counters. */
  save?(): Promise<string>;
}

/** How long to wait for the xtables lock another program holds, in seconds. */
const LOCK_WAIT_SECONDS = '5';

export interface RunnerOptions {
  iptables?: string;
  restore?: string;
  /** Default: the iptables binary's name + "-save". */
  save?: string;
  /** A command to run iptables through, e.g. ['ip', 'netns', 'exec', 'lab'] in tests. */
  prefix?: readonly string[];
  /**
   * Feed restores to one long-lived `iptables-restore -v --noflush` instead of an exec per
   * batch. Each batch is followed by a comment, which -v echoes only once the COMMIT before
   * it is in the kernel: about 1 ms a batch instead of 3-10. A failed batch ends that
   * process (its error is the batch's) and the next batch starts another.
   */
  persistent?: boolean;
}

export function iptablesRunner(options: RunnerOptions = {}): IptablesRunner {
  const iptables = options.iptables ?? 'iptables';
  const binaries = { iptables, restore: options.restore ?? 'iptables-restore', save: options.save ?? `${iptables}-save` };
  const [command, ...prefixArgs] = options.prefix ?? [];
  const run = (binary: string, args: string[], input?: string) =>
    command
      ? execa(command, [...prefixArgs, binary, ...args], input === undefined ? {} : { input })
      : execa(binary, args, input === undefined ? {} : { input });
  const restore = options.persistent ? persistentRestore(binaries.restore, options.prefix ?? []) : undefined;
  return {
    async list() {
      try {
        const { stdout } = await run(binaries.iptables, ['-w', LOCK_WAIT_SECONDS, '-S']);
        return stdout.split('\n').filter((line) => line.length > 0);
      } catch (err) {
        throw explain(err as ExecaError, binaries.iptables);
      }
    },
    async restore(script, restoreOptions = {}) {
      // The bound is for the work; waiting for another program's xtables lock comes on top.
      const timeoutMs = restoreOptions.timeoutMs === undefined ? undefined : restoreOptions.timeoutMs + Number(LOCK_WAIT_SECONDS) * 1000;
      if (restore) return restore.apply(script, timeoutMs);
      try {
        await execaWithTimeout(run(binaries.restore, ['--noflush', '--wait', LOCK_WAIT_SECONDS], script), timeoutMs);
      } catch (err) {
        const failure = err as ExecaError;
        if (failure.code === 'ENOENT') throw explain(failure, binaries.restore);
        throw new ApplyError(`${binaries.restore} failed: ${firstLine(failure.stderr) || failure.shortMessage}`, {
          stderr: String(failure.stderr ?? ''),
          ...(failure.exitCode !== undefined ? { exitCode: failure.exitCode } : {}),
          cause: err,
        });
      }
    },
    async save() {
      try {
        return (await run(binaries.save, ['-c', '-t', 'filter'])).stdout;
      } catch (err) {
        throw explain(err as ExecaError, binaries.save);
      }
    },
    close: () => restore?.close(),
  };
}

function persistentRestore(binary: string, prefix: readonly string[]) {
  const ack = (sequence: number) => `# on-his-name ack ${sequence}`;
  const pipe = new AckedPipe({
    argv: [...prefix, binary, '-v', '--noflush', '--wait', LOCK_WAIT_SECONDS],
    ackRequest: ack,
    isAck: (line, sequence) => line === ack(sequence),
  });
  return {
    async apply(script: string, timeoutMs?: number): Promise<void> {
      try {
        await pipe.send(script, timeoutMs);
      } catch (err) {
        const message = (err as Error).message.replace(/^exited: /, '');
        throw new ApplyError(`${binary} failed: ${message}`, { stderr: message, cause: err });
      }
    },
    close: () => pipe.close(),
  };
}

/** Turn the failures an operator can fix into one clear ConfigError line. */
function explain(err: ExecaError, binary: string): Error {
  const stderr = String(err.stderr ?? '');
  if (err.code === 'ENOENT') {
    return new ConfigError(`${binary} not found: install it (apt-get install iptables)`, { cause: err });
  }
  if (/permission denied|you must be root|Operation not permitted/i.test(stderr)) {
    return new ConfigError(`${binary} was refused permission: run on-his-name as root (it needs CAP_NET_ADMIN)`, {
      cause: err,
    });
  }
  if (/No chain\/target\/match|does not exist/i.test(stderr)) return missingChain(err, binary);
  if (/incompatible/i.test(stderr)) {
    return new ConfigError(
      `${binary} cannot read the ${CHAIN} chain (${firstLine(stderr)}): Docker and on-his-name must use the same ` +
        `iptables backend; choose it with "update-alternatives --config iptables"`,
      { cause: err },
    );
  }
  return new ApplyError(`${binary} failed: ${firstLine(stderr) || err.shortMessage}`, {
    stderr,
    ...(err.exitCode !== undefined ? { exitCode: err.exitCode } : {}),
    cause: err,
  });
}

function missingChain(err: ExecaError, binary: string): ConfigError {
  return new ConfigError(
    `the ${binary} ${CHAIN} chain does not exist: start Docker (it creates the chain), or for a plain bridge ` +
      `create it with "${binary} -N ${CHAIN} && ${binary} -I FORWARD -j ${CHAIN}"`,
    { cause: err },
  );
}

/** A one-shot restore past its time bound is killed and fails like any other. */
async function execaWithTimeout<T>(running: T & Promise<unknown> & { kill(): void }, timeoutMs: number | undefined): Promise<void> {
  if (timeoutMs === undefined) {
    await running;
    return;
  }
  const timer = setTimeout(() => running.kill(), timeoutMs);
  try {
    await running;
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(text: unknown): string {
  return String(text ?? '').split('\n')[0]?.trim() ?? '';
}
