export interface Entry { address: string; name?: string; /** wall-clock unix seconds */ expiresAt?: number }
export interface FirewallBackend {
  /** Install or repair the base rules; return the entries already in the kernel (adopted) and whether the base was rebuilt. */
  sync(): Promise<{ adopted: Entry[]; rebuilt: boolean }>;
  /** One kernel transaction: put `add` in (new, or refreshed expiry) and take `remove` out. Throws ApplyError on failure. */
  apply(add: readonly Entry[], remove: readonly Entry[]): Promise<void>;
}
