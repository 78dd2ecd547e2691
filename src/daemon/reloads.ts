/**
 * Live changes of the policies: SIGHUP, or the policy file changing on disk. The new file
 * is read and checked whole first (config/policies.ts); a bad one is one log line with the
 * file, the line and the reason, and the running policies stay. A good one is applied in one
 * step: addresses no longer allowed close, new patterns count from the next answer, and
 * nothing else moves (open flows, counters and lifetimes stay).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { loadPolicies } from '../config/policies.js';
import type { Clients } from '../policy/clients.js';
import { logChanges, routesOf } from './policy-changes.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import type { PolicyFirewalls } from './policy-firewalls.js';

export interface ReloadResult {
  /** ISO time of the attempt. */
  at: string;
  ok: boolean;
  why: string;
  error?: string;
}

export class Reloads {
  last: ReloadResult | undefined;
  private running: Promise<ReloadResult> | undefined;
  /** The one more reload that the changes arriving during `running` get. */
  private next: Promise<ReloadResult> | undefined;

  constructor(
    private readonly config: Config,
    private readonly clients: Clients,
    private readonly firewalls: PolicyFirewalls,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Read the file again and apply it. Asked while a reload runs, it coalesces with every
   * other such request into one more reload after it, and resolves with that one's result:
   * the running reload may have read the file before the change the caller is asking about.
   */
  reload(why: string): Promise<ReloadResult> {
    if (this.next) return this.next;
    if (this.running) {
      this.next = this.running.then(() => {
        this.next = undefined;
        return this.start(why);
      });
      return this.next;
    }
    return this.start(why);
  }

  private start(why: string): Promise<ReloadResult> {
    this.running = this.once(why).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async once(why: string): Promise<ReloadResult> {
    const at = new Date(this.now()).toISOString();
    try {
      const policies = await loadPolicies(this.config);
      const changes = this.clients.usePolicies(policies);
      await this.firewalls.update(this.clients.policiesInUse(), routesOf(this.clients), this.clients.snapshot());
      this.last = { at, ok: true, why };
      this.log.info({ why, policies: [...policies.named.keys()], file: this.config.policyFile }, 'policies reloaded');
      logChanges(changes, this.log);
    } catch (err) {
      this.last = { at, ok: false, why, error: (err as Error).message };
      this.log.error({ why, err: (err as Error).message }, 'policy reload refused: the running policies stay');
    }
    return this.last;
  }
}

/**
 * Calls `onChange` when `file` changes. The directory is watched, not the file: editors
 * and config managers replace a file by renaming another over it, which a watch on the
 * file itself stops seeing. Bursts of events (a write is several) coalesce.
 */
export function watchFile(file: string, onChange: () => void, log: Logger, settleMs = 200, clock: Clock = systemClock): { close(): void } {
  const name = basename(file);
  let timer: Timer | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), (_, changed) => {
      if (changed !== null && changed !== name) return;
      if (timer) clock.clearTimeout(timer);
      timer = clock.setTimeout(() => {
        timer = undefined;
        onChange();
      }, settleMs);
    });
    watcher.on('error', (err) => log.warn({ err: err.message, file }, 'cannot watch the policy file any more: reload with SIGHUP'));
  } catch (err) {
    log.warn({ err: (err as Error).message, file }, 'cannot watch the policy file: reload with SIGHUP');
  }
  return {
    close() {
      if (timer) clock.clearTimeout(timer);
      watcher?.close();
    },
  };
}
