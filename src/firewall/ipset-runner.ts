/**
 * The ipset runner: the only place that execs ipset. Two ways to feed it restore lines:
 *
 * - execIpset: one `ipset -exist restore` per batch. Simple; costs an exec (~2-3 ms) per batch.
 * - persistentIpset: one long-lived `ipset -exist -` (interactive mode) fed through stdin.
 *   Interactive mode runs each line as it arrives and prints nothing on success, so after a
 *   batch we send `version`: its reply comes back only once every line before it ran, and
 *   any other line that came back before it is an error for this batch. stdout is made
 *   unbuffered (stdbuf) and merged with stderr into one pipe, so the order holds.
 */
import { execa, type ExecaError, type ResultPromise } from 'execa';
import { ApplyError, ConfigError } from '../errors.js';

export interface IpsetRunner {
  /** `ipset list -o save SET`, or undefined when there is no such set. */
  save(set: string): Promise<string | undefined>;
  /** Every line of `script` (restore syntax), with -exist. Throws ApplyError. */
  restore(script: string): Promise<void>;
  /** `ipset destroy SET`; false when there was no such set. */
  destroy(set: string): Promise<boolean>;
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
    close() {},
  };
}

/** save and destroy exec as above; restore goes to one long-lived ipset, restarted after any failure. */
export function persistentIpset(options: IpsetRunnerOptions = {}): IpsetRunner {
  const binary = options.ipset ?? 'ipset';
  const oneShot = execIpset(options);
  let child: ResultPromise | undefined;
  let output = '';
  let waiter: (() => void) | undefined;
  let queue: Promise<void> = Promise.resolve();

  const start = (): ResultPromise => {
    // One pipe for both streams (2>&1), so an error line always arrives before the answer to
    // the `version` that follows it; two pipes could deliver them in either order.
    const shell = ['sh', '-c', 'exec "$@" 2>&1', 'sh', 'stdbuf', '-o0', binary, '-exist', '-'];
    const [command, ...args] = [...(options.prefix ?? []), ...shell];
    const spawned = execa(command!, args, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false });
    output = '';
    const take = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      waiter?.();
    };
    // A write to a process that just died fails with EPIPE: its exit already rejects the batch.
    spawned.stdin?.on('error', () => undefined);
    spawned.stdout?.on('data', take);
    spawned.stderr?.on('data', take);
    void spawned.then(() => {
      if (child === spawned) child = undefined;
      waiter?.();
    });
    return spawned;
  };
  const stop = () => {
    child?.kill('SIGTERM');
    child = undefined;
  };

  const send = async (script: string): Promise<void> => {
    const proc = (child ??= start());
    output = '';
    const acknowledged = new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${binary} within ${ACK_TIMEOUT_MS} ms`)), ACK_TIMEOUT_MS);
      waiter = () => {
        const lines = output.replace(PROMPT, '').split('\n');
        const at = lines.findIndex((line) => ACK.test(line));
        if (at < 0 && child === proc) return;
        clearTimeout(timer);
        waiter = undefined;
        if (at < 0) reject(new Error(`${binary} exited: ${lines.join(' ').trim()}`));
        else resolve(lines.slice(0, at).map((l) => l.trim()).filter(Boolean));
      };
    });
    proc.stdin?.write(`${script.endsWith('\n') ? script : `${script}\n`}version\n`);
    let errors: string[];
    try {
      errors = await acknowledged;
    } catch (err) {
      stop();
      throw new ApplyError(`${binary} failed: ${(err as Error).message}`, { cause: err });
    }
    if (errors.length) {
      // -exist: lines that did run are harmless to run again, so the caller may retry all.
      throw new ApplyError(`${binary} failed: ${errors[0]}`, { stderr: errors.join('\n') });
    }
  };

  return {
    save: (set) => oneShot.save(set),
    destroy: (set) => oneShot.destroy(set),
    restore(script) {
      if (!script) return Promise.resolve();
      // One batch at a time on the one pipe: acknowledgements must not interleave.
      const result = queue.then(() => send(script));
      queue = result.catch(() => undefined);
      return result;
    },
    close: stop,
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
