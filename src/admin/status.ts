/**
 * `on-his-name status`: ask a running daemon's admin API and print its tables. The daemon
 * is the only source: status reads no kernel state itself, so it needs no privilege.
 */
import type { AdminAddress } from '../config/config.js';
import type { AcceptedView, BlockedListView, MatchersView, PoliciesView } from './api.js';
import { formatHostPort } from '../util/host-port.js';
import { renderStatus } from './table.js';

const TIMEOUT_MS = 5_000;

/** Where to connect for an address the daemon listens on: a wildcard listens on loopback too. */
export function adminUrl(address: Pick<AdminAddress, 'host' | 'port'>): string {
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  return `http://${formatHostPort(host, address.port)}`;
}

/** Prints the tables, or one line saying why the daemon could not be asked; the exit code. */
export async function runStatus(
  address: AdminAddress,
  out: { write(text: string): unknown } = process.stdout,
  err: { write(text: string): unknown } = process.stderr,
): Promise<number> {
  const base = adminUrl(address);
  try {
    const [accepted, matchers, policies, blocked] = await Promise.all([
      getJson<AcceptedView>(`${base}/api/accepted`),
      getJson<MatchersView>(`${base}/api/matchers`),
      // A daemon from before policies (or the blocked view) lacks these: its status is the rest.
      getJson<PoliciesView>(`${base}/api/policies`).catch(() => undefined),
      getJson<BlockedListView>(`${base}/api/blocked`).catch(() => undefined),
    ]);
    out.write(renderStatus(accepted, matchers, policies, blocked));
    return 0;
  } catch (e) {
    err.write(unreachable(base, address, e));
    return 1;
  }
}

/** The one line for a daemon that did not answer. */
export function unreachable(base: string, address: Pick<AdminAddress, 'host' | 'port'>, error: unknown): string {
  return `on-his-name: cannot read the admin API at ${base} (${reason(error)}): is on-his-name running with --admin-listen ${formatHostPort(address.host, address.port)}?\n`;
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!response.ok) throw new Error(`${new URL(url).pathname} answered HTTP ${response.status}`);
  return (await response.json()) as T;
}

/** fetch hides the socket error in `cause`: ECONNREFUSED says more than "fetch failed". */
function reason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.code;
  if ((error as Error).name === 'TimeoutError') return `no answer within ${TIMEOUT_MS / 1000} s`;
  return (error as Error).message ?? String(error);
}
