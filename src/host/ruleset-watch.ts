/**
 * Someone changing the host's firewall under us: `nft monitor` reports every change to the
 * kernel's ruleset (iptables-nft's rules included, as nftables rules of table ip filter),
 * and a change that could open egress asks for a reconcile at once, instead of at the next
 * --reconcile-interval. `systemctl reload nftables` (Debian's `flush ruleset`) or an
 * `iptables -F DOCKER-USER` would otherwise leave the bridge open for up to that interval.
 *
 * What could open egress: our table, chains or sets deleted or flushed, and rules added or
 * deleted in the chains a packet from the bridge meets (an accept put ahead of ours). Also
 * asking: elements of our sets deleted by someone else (`nft flush set` reports each), which
 * closes what answers opened until the reconcile puts them back. The blocked sets' elements
 * come and go with dropped packets and our reads, and ask for nothing. Nor do our own
 * changes: `nft monitor` ends each transaction with "# new generation N by process PID",
 * and a transaction by a process of ours (our iptables-restore, our nft) is skipped. They
 * would otherwise ask for a reconcile a second under a stream of answers, each a read of
 * the whole chain (a second at 10,000 rules) that batches of new addresses wait behind.
 * A writer we cannot place (gone already, or no generation line within GENERATION_WAIT_MS)
 * counts as someone else's: at most one reconcile per `minIntervalMs`.
 *
 * Without nft (iptables-legacy hosts), or when it exits, the reconcile interval is all
 * there is: said once, retried after a while.
 */
import { execa, type ResultPromise } from 'execa';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../util/clock.js';

export interface RulesetWatchOptions {
  onChange: () => unknown;
  log: Logger;
  clock?: Clock;
  /** At most one onChange per this many milliseconds. */
  minIntervalMs?: number;
  /** The monitor: nftMonitor() for the real `nft monitor`, or a test's own lines. */
  spawn: RulesetMonitor;
  /** Is the process that made a change one of ours? A child of this process by default. */
  isOurs?: (pid: number) => boolean;
}

/** Starts a monitor that calls onLine for each line of `nft monitor`'s output. */
export type RulesetMonitor = (onLine: (line: string) => void) => { exited: Promise<unknown>; stop(): void };

export interface RulesetWatch {
  stop(): void;
}

const MIN_INTERVAL_MS = 1_000;
/** After the monitor exits, try again this much later. */
const RESTART_MS = 30_000;
/** Chains whose rules a packet from a bridge meets: Docker's, iptables' hooks, ours. */
const WATCHED_CHAINS = /\b(DOCKER-USER|FORWARD|INPUT|ON-HIS-NAME-[A-Z]+|OHN-P-\S+)\b/;
const OUR_TABLE = /\binet on-his-name\b/;
/** The blocked view's record (firewall/nft/blocked.ts): filled by the packet path, emptied by our reads. */
const RECORD_SETS = /\binet on-his-name blocked[46]\b/;
const GENERATION = /^# new generation \d+ by process (\d+)/;
/** How long a change waits for the line naming its author; it follows in the same read, in practice. */
const GENERATION_WAIT_MS = 100;

/** A child of this process: its parent in /proc/PID/stat (the field after the parenthesised name). */
export function childOfUs(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
  } catch {
    return false; // gone already: it cannot be told from someone else's
  }
}

/** Could this `nft monitor` line open egress, or close what answers opened? */
export function couldOpen(line: string): boolean {
  if (/^delete element /.test(line)) return OUR_TABLE.test(line) && !RECORD_SETS.test(line);
  if (/^add element /.test(line)) return false;
  if (/^flush ruleset/.test(line)) return true;
  if (/^(delete|flush) table /.test(line)) return true;
  if (OUR_TABLE.test(line)) return /^(delete|flush|add rule|insert rule|replace rule)/.test(line);
  return /^(add|insert|replace|delete) rule |^(delete|flush) chain /.test(line) && WATCHED_CHAINS.test(line);
}

export function watchRuleset(options: RulesetWatchOptions): RulesetWatch {
  const clock = options.clock ?? systemClock;
  const minIntervalMs = options.minIntervalMs ?? MIN_INTERVAL_MS;
  const { spawn } = options;
  const isOurs = options.isOurs ?? childOfUs;
  let stopped = false;
  /** The transaction under way's first change that could open egress, until its generation line says whose it was. */
  let suspect: { change: string; timer: Timer } | undefined;
  let pending: Timer | undefined;
  let lastAt = -Infinity;
  let restart: Timer | undefined;
  let current: { stop(): void } | undefined;

  const fire = () => {
    pending = undefined;
    lastAt = clock.now();
    void Promise.resolve()
      .then(options.onChange)
      .catch((err: Error) => options.log.warn({ err: err.message }, 'reconcile after a ruleset change failed'));
  };
  const reconcileFor = (change: string, pid?: number) => {
    if (stopped || pending) return;
    // writerPid, not pid: pino's pid is this process's own.
    options.log.debug({ change, writerPid: pid }, 'the ruleset changed: reconciling');
    pending = clock.setTimeout(fire, Math.max(0, lastAt + minIntervalMs - clock.now())).unref();
  };
  const clearSuspect = () => {
    if (suspect) clock.clearTimeout(suspect.timer);
    const change = suspect?.change;
    suspect = undefined;
    return change;
  };
  const onLine = (line: string) => {
    const generation = GENERATION.exec(line);
    if (generation) {
      const change = clearSuspect();
      const pid = Number(generation[1]);
      if (change !== undefined && !isOurs(pid)) reconcileFor(change, pid);
      return;
    }
    if (suspect || !couldOpen(line)) return;
    const timer = clock.setTimeout(() => reconcileFor(clearSuspect() ?? line), GENERATION_WAIT_MS).unref();
    suspect = { change: line, timer };
  };
  const start = () => {
    if (stopped) return;
    clearSuspect();
    const monitor = spawn(onLine);
    current = monitor;
    void monitor.exited.then(
      () => undefined,
      (err: Error) => err,
    ).then((err) => {
      if (stopped) return;
      if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        options.log.info('no nft command here: changes to the ruleset are seen at the next reconcile only (--reconcile-interval)');
        return;
      }
      options.log.warn({ err: err?.message }, `nft monitor ended: changes to the ruleset are seen at the next reconcile only; trying again in ${RESTART_MS / 1000} s`);
      restart = clock.setTimeout(start, RESTART_MS).unref();
    });
  };
  start();
  return {
    stop() {
      stopped = true;
      clearSuspect();
      if (pending) clock.clearTimeout(pending);
      if (restart) clock.clearTimeout(restart);
      current?.stop();
    },
  };
}

/**
 * The real `nft monitor`, through `prefix` (e.g. ['ip', 'netns', 'exec', 'lab']) if given.
 * It never reads its stdin, so it would outlive us (a SIGKILL leaves children running): a
 * shell holds it and kills it when our end of its stdin closes, at stop or at our death.
 */
export function nftMonitor(prefix: readonly string[] = []): RulesetMonitor {
  return (onLine) => {
    const [command, ...args] = [...prefix, 'sh', '-c', 'command -v nft >/dev/null || exit 127; nft monitor & read -r _; kill $! 2>/dev/null'];
    const child: ResultPromise = execa(command!, args, { buffer: false, stdin: 'pipe', stderr: 'ignore' });
    let rest = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
    const exited = child.then(
      () => undefined,
      (err: { exitCode?: number }) => {
        throw err.exitCode === 127 ? Object.assign(new Error('nft not found'), { code: 'ENOENT' }) : err;
      },
    );
    return { exited, stop: () => child.stdin?.end() };
  };
}
