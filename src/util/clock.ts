/**
 * Time as a dependency. Code that waits (a reconnect's backoff, a handshake's deadline, a
 * summary's interval) or measures (how long a peer was away) asks a Clock instead of the
 * globals, so that its tests move time themselves: "nothing happened" is seen by moving
 * past the moment it would have happened, not by sleeping and hoping the machine was quick.
 *
 * systemClock is the default everywhere and is the real thing: Date.now and Node's timers,
 * looked up at each call (so a test that fakes the globals still reaches them).
 */

/** A timer set on a Clock. unref(): the process need not stay alive for it (Node's meaning). */
export interface Timer {
  unref(): Timer;
}

export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  now(): number;
  /** Call `fn` once, `ms` from now; as Node's setTimeout, a delay under 1 ms means 1 ms. */
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/**
 * Resolves `ms` from now on `clock`; rejects with an AbortError when `signal` aborts first,
 * as node:timers/promises' setTimeout does.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/** A repeating call set by every(); stop() cancels the calls to come (one under way goes on). */
export interface Repeating {
  stop(): void;
}

/**
 * Calls `fn` every `ms` on `clock` until stop(), as setInterval(fn, ms).unref() does: the
 * next call is set before this one runs, so a slow or failing `fn` never shifts the beat,
 * and it never keeps the process alive on its own.
 */
export function every(clock: Clock, ms: number, fn: () => void): Repeating {
  let timer: Timer | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    timer = clock.setTimeout(tick, ms).unref();
    fn();
  };
  timer = clock.setTimeout(tick, ms).unref();
  return {
    stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
