/**
 * A long-lived child process fed batches through stdin, each followed by a line whose
 * answer proves that everything before it ran: `version` for `ipset -`, an echoed comment
 * for `iptables-restore -v`. Spares the exec per batch (2-4 ms, the bulk of the time from
 * answer to rule), which is what lets inline DNS hold an answer for about a millisecond.
 *
 * stdout and stderr share one pipe (2>&1), so an error line always arrives before the
 * acknowledgement that follows it. A batch at a time: acknowledgements never interleave.
 * A child that dies or stays silent fails the batch and is replaced for the next one.
 */
import { execa, type ResultPromise } from 'execa';

export interface AckedPipeOptions {
  /** The command and its arguments, e.g. ['ipset', '-exist', '-']. */
  argv: readonly string[];
  /** Text written after each batch to ask for an acknowledgement. */
  ackRequest: (sequence: number) => string;
  /** Is this output line the acknowledgement of batch `sequence`? */
  isAck: (line: string, sequence: number) => boolean;
  /** Output noise to drop before reading lines (e.g. ipset's prompt). */
  noise?: RegExp;
  timeoutMs?: number;
}

/** What came back for a batch: the output lines before its acknowledgement (errors, if any). */
export type BatchOutput = string[];

export class PipeError extends Error {
  override readonly name = 'PipeError';
}

const DEFAULT_TIMEOUT_MS = 5_000;

export class AckedPipe {
  private child: ResultPromise | undefined;
  private output = '';
  private waiter: (() => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private sequence = 0;
  /** Closed for good: no batch starts the process again (a late one after a stop would keep the daemon alive). */
  private closed = false;

  constructor(private readonly options: AckedPipeOptions) {}

  /** Write `batch` and resolve with the lines printed before its acknowledgement, within `timeoutMs` (default: the pipe's). */
  send(batch: string, timeoutMs?: number): Promise<BatchOutput> {
    const result = this.queue.then(() => this.exchange(batch, timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Ends the process for good: later batches fail at once. */
  close(): void {
    this.closed = true;
    this.kill();
  }

  /** Ends the process; the next batch starts a new one. */
  private kill(): void {
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }

  private start(): ResultPromise {
    const [command, ...args] = ['sh', '-c', 'exec "$@" 2>&1', 'sh', ...this.options.argv];
    const spawned = execa(command!, args, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false });
    this.output = '';
    const take = (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
      this.waiter?.();
    };
    // A write to a process that just died fails with EPIPE: its exit already fails the batch.
    spawned.stdin?.on('error', () => undefined);
    spawned.stdout?.on('data', take);
    spawned.stderr?.on('data', take);
    void spawned.then(() => {
      if (this.child === spawned) this.child = undefined;
      this.waiter?.();
    });
    return spawned;
  }

  private async exchange(batch: string, timeoutMs: number): Promise<BatchOutput> {
    if (this.closed) throw new PipeError('closed');
    const proc = (this.child ??= this.start());
    const sequence = ++this.sequence;
    this.output = '';
    const acknowledged = new Promise<BatchOutput>((resolve, reject) => {
      const timer = setTimeout(() => reject(new PipeError(`no answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = () => {
        const lines = this.lines();
        const at = lines.complete.findIndex((line) => this.options.isAck(line, sequence));
        if (at < 0 && this.child === proc) return;
        clearTimeout(timer);
        this.waiter = undefined;
        if (at < 0) reject(new PipeError(`exited: ${lines.all.join(' ') || 'no output'}`));
        else resolve(lines.complete.slice(0, at));
      };
    });
    proc.stdin?.write(`${batch.endsWith('\n') || batch === '' ? batch : `${batch}\n`}${this.options.ackRequest(sequence)}\n`);
    try {
      return await acknowledged;
    } catch (err) {
      this.kill();
      throw err;
    }
  }

  /** Output so far, as lines; `complete` leaves out a last line still being written. */
  private lines(): { complete: string[]; all: string[] } {
    const text = this.options.noise ? this.output.replace(this.options.noise, '') : this.output;
    const raw = text.split('\n');
    const tidy = (lines: string[]) => lines.map((line) => line.trim()).filter(Boolean);
    return { complete: tidy(raw.slice(0, -1)), all: tidy(raw) };
  }
}
