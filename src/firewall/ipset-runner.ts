/**
 * The ipset runner: the only place that execs ipset. Two ways to feed it restore lines:
 *
 * - execIpset: one `ipset -exist restore` per batch. Simple; costs an exec (~2-3 ms) per batch.
 * - persistentIpset: one long-lived `ipset -exist -` (interactive mode) fed through stdin
 *   (acked-pipe.ts). Interactive mode runs each line as it arrives and prints nothing on
 *   success, so after a batch we send `version`: its reply comes back only once every line
 *   before it ran, and any other line that came back before it is an error for this batch.
 */
import { execa, type ExecaError } from 'execa';
import { ApplyError, ConfigError } from '../util/errors.js';
import { AckedPipe } from './acked-pipe.js';

export interface IpsetRunner {
  /** `ipset list -o save SET`, or undefined when there is no such set. */
  save(set: string): Promise<string | undefined>;
  /** Every line of `script` (restore syntax), with -exist. Throws ApplyError. */
  restore(script: string): Promise<void>;
  /** `ipset destroy SET`; false when there was no such set. */
  destroy(set: string): Promise<boolean>;
  /** Every set's name (`ipset list -n`), ours and others'. */
  names(): Promise<string[]>;
  /** End a long-lived process, if there is one. */
  close(): void;
}

export interface IpsetRunnerOptions {
  ipset?: string;
  /** A command to run ipset through, e.g. ['ip', 'netns', 'exec', 'lab'] in tests. */
  prefix?: readonly string[];
}

const NO_SUCH_SET = /does not exist/i;
/** How long a long-lived ipset may take to acknowledge a batch before it is replaced. */
const ACK_TIMEOUT_MS = 5_000;
const ACK = /ipset v[\d.]+, protocol version: \d+/;
const PROMPT = /ipset> /g;

export function execIpset(options: IpsetRunnerOptions = {}): IpsetRunner {
  const binary = options.ipset ?? 'ipset';
  const run = (args: string[], input?: string) => {
    const [command, ...prefixArgs] = [...(options.prefix ?? []), binary, ...args];
    return execa(command!, prefixArgs, input === undefined ? {} : { input });
  };
  return {
    async save(set) {
      try {
        return (await run(['list', '-o', 'save', set])).stdout;
      } catch (err) {
        if (NO_SUCH_SET.test(String((err as ExecaError).stderr))) return undefined;
        throw explain(err as ExecaError, binary);
      }
    },
    async restore(script) {
      if (!script) return;
      try {
        await run(['-exist', 'restore'], script);
      } catch (err) {
        throw explain(err as ExecaError, binary);
      }
    },
    async destroy(set) {
      try {
        await run(['destroy', set]);
        return true;
      } catch (err) {
        if (NO_SUCH_SET.test(String((err as ExecaError).stderr))) return false;
        throw explain(err as ExecaError, binary);
      }
    },
    async names() {
      try {
        return (await run(['list', '-n'])).stdout.split('\n').filter(Boolean);
      } catch (err) {
        throw explain(err as ExecaError, binary);
      }
    },
    close() {},
  };
}

/** save and destroy exec as above; restore goes to one long-lived ipset, restarted after any failure. */
export function persistentIpset(options: IpsetRunnerOptions = {}): IpsetRunner {
  const binary = options.ipset ?? 'ipset';
  const oneShot = execIpset(options);
  // Interactive mode buffers stdout and writes a prompt for every line it reads. Line-buffered
  // (stdbuf -oL), the prompts go out with the next newline, the `version` answer: one write
  // per batch instead of one per line, which we would each have to wake up for.
  const pipe = new AckedPipe({
    argv: [...(options.prefix ?? []), 'stdbuf', '-oL', binary, '-exist', '-'],
    ackRequest: () => 'version',
    isAck: (line) => ACK.test(line),
    noise: PROMPT,
    timeoutMs: ACK_TIMEOUT_MS,
  });
  return {
    save: (set) => oneShot.save(set),
    destroy: (set) => oneShot.destroy(set),
    names: () => oneShot.names(),
    async restore(script) {
      if (!script) return;
      let errors: string[];
      try {
        errors = await pipe.send(script);
      } catch (err) {
        throw new ApplyError(`${binary} failed: ${(err as Error).message}`, { cause: err });
      }
      // -exist: lines that did run are harmless to run again, so the caller may retry all.
      if (errors.length) throw new ApplyError(`${binary} failed: ${errors[0]}`, { stderr: errors.join('\n') });
    },
    close: () => pipe.close(),
  };
}

/** Turn the failures an operator can fix into one clear ConfigError line. */
function explain(err: ExecaError, binary: string): Error {
  const stderr = String(err.stderr ?? '');
  if (err.code === 'ENOENT' || /ipset: not found|No such file/.test(stderr)) {
    return new ConfigError(`${binary} not found: install it (apt-get install ipset), or run without --backend ipset`, { cause: err });
  }
  if (/permission denied|Operation not permitted|must be root/i.test(stderr)) {
    return new ConfigError(`${binary} was refused permission: run on-his-name as root (it needs CAP_NET_ADMIN)`, { cause: err });
  }
  return new ApplyError(`${binary} failed: ${stderr.split('\n')[0]?.trim() || err.shortMessage}`, {
    stderr,
    ...(err.exitCode !== undefined ? { exitCode: err.exitCode } : {}),
    cause: err,
  });
}
