/**
 * Who waits for an address to reach the kernel: inline DNS holds an allowed answer until
 * then. A waiter leaves when its signal aborts (the hold ran out), so a kernel that keeps
 * refusing changes does not pile up one waiter per held query.
 */
export class Waiters {
  private readonly waiting = new Map<string, Set<(inKernel: boolean) => void>>();

  /** Resolves with what wake() says for `address`, or false when `signal` aborts first. */
  wait(address: string, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let set = this.waiting.get(address);
      if (!set) this.waiting.set(address, (set = new Set()));
      const waiter = (inKernel: boolean) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(inKernel);
      };
      const onAbort = () => {
        this.drop(address, waiter);
        resolve(false);
      };
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  wake(address: string, inKernel: boolean): void {
    const set = this.waiting.get(address);
    if (!set) return;
    this.waiting.delete(address);
    for (const waiter of set) waiter(inKernel);
  }

  /** Addresses someone waits for. */
  addresses(): IterableIterator<string> {
    return this.waiting.keys();
  }

  /** Waiters still registered (for tests and the health view). */
  get size(): number {
    let n = 0;
    for (const set of this.waiting.values()) n += set.size;
    return n;
  }

  private drop(address: string, waiter: (inKernel: boolean) => void): void {
    const set = this.waiting.get(address);
    set?.delete(waiter);
    if (set?.size === 0) this.waiting.delete(address);
  }
}
