/**
 * `on-his-name status` for a person: the admin API's JSON as aligned tables. Pure.
 */
import { auditWarning, type AcceptedView, type BlockedListView, type MatchersView, type PoliciesView } from './api.js';

/** Blocked destinations shown by status; the rest are in /api/blocked. */
export const BLOCKED_ROWS = 20;

export function renderStatus(accepted: AcceptedView, matchers: MatchersView, policies?: PoliciesView, blocked?: BlockedListView): string {
  const open = accepted.addresses;
  const lines: string[] = [];
  const auditing = policies?.policies.filter((p) => p.audit).map((p) => p.name) ?? [];
  if (auditing.length) lines.push(auditWarning(auditing), '');
  // One policy is the common case: its table would only repeat the patterns below.
  if (policies && policies.policies.length > 1) lines.push(...renderPolicies(policies), '');
  if (open.length === 0) lines.push('No address is open.');
  else {
    lines.push(
      ...table(
        ['ADDRESS', 'NAME', 'POLICY', 'CLIENT', 'CONTAINER', 'EXPIRES IN', 'PACKETS', 'BYTES'],
        open.map((a) => [a.address, a.name ?? '-', a.policy, a.client ?? '-', a.container ?? '-', expiresIn(a.expiresInSeconds, a.expiresAt), count(a.packets), bytes(a.bytes)]),
        [false, false, false, false, false, true, true, true],
      ),
    );
    const v6 = open.filter((a) => a.family === 6).length;
    lines.push('', `${plural(open.length, 'address', 'addresses')} open (IPv4 ${open.length - v6}, IPv6 ${v6}).`);
  }
  if (accepted.countersError) lines.push(`Counters unavailable: ${accepted.countersError}`);
  lines.push('', ...table(['POLICY', 'PATTERN', 'ALLOWS'], matchers.matchers.map((m) => [m.policy, m.pattern, String(m.allows)]), [false, false, true]));
  const { allow, deny, skip } = matchers.decisions;
  lines.push('', `Decisions: ${allow} allow, ${deny} deny, ${skip} skip.`);
  if (blocked?.enabled) lines.push('', ...renderBlocked(blocked, Date.parse(accepted.now)));
  return `${lines.join('\n')}\n`;
}

/** The blocked destinations, most recent first: who, where, which name led there, how often. */
export function renderBlocked(view: BlockedListView, nowMs: number): string[] {
  if (view.blocked.length === 0) return ['Nothing blocked yet.'];
  const shown = view.blocked.slice(0, BLOCKED_ROWS);
  const name = (b: BlockedListView['blocked'][number]) => (b.name === null ? 'no DNS answer: a hard-coded address' : b.nameAllowed ? `${b.name} (allowed)` : `${b.name} (denied)`);
  const lines = table(
    ['BLOCKED', 'CLIENT', 'CONTAINER', 'POLICY', 'DESTINATION', 'PORT', 'NAME', 'COUNT'],
    shown.map((b) => [
      `${expiresIn(Math.max(0, Math.round((nowMs - Date.parse(b.lastSeen)) / 1000)), b.lastSeen)} ago${b.audit ? ' (audit)' : ''}`,
      b.client,
      b.container ?? '-',
      b.policy,
      b.address,
      `${b.protocol}/${b.port}`,
      name(b),
      String(b.count),
    ]),
    [true, false, false, false, false, false, false, true],
  );
  if (view.blocked.length > shown.length) lines.push(`${view.blocked.length - shown.length} more in /api/blocked (on-his-name suggest turns them into patterns).`);
  return lines;
}

/**
 * Each policy: its ports, who has it (ranges of the file, containers by their labels) and
 * its patterns; a container refused its labels says why. The last reload, when one failed.
 */
export function renderPolicies(view: PoliciesView): string[] {
  const who = (p: PoliciesView['policies'][number]) => {
    const them = [...p.clients, ...p.containers.map((c) => c.name)];
    return them.length ? them.join(' ') : p.name === 'default' ? '(every other client)' : '-';
  };
  const lines = table(
    ['POLICY', 'PORTS', 'CLIENTS', 'PATTERNS'],
    view.policies.map((p) => [p.audit ? `${p.name} (audit)` : p.name, p.ports.join(' ') || '-', who(p), p.patterns.join(' ') || '(none: opens nothing)']),
    [false, false, false, false],
  );
  for (const p of view.policies) for (const c of p.containers) if (c.refusal) lines.push(`Container ${c.name} opens nothing: ${c.refusal}.`);
  if (view.reload && !view.reload.ok) lines.push(`The last reload (${view.reload.at}, ${view.reload.why}) was refused: ${view.reload.error}`);
  return lines;
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, rightAligned: readonly boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]!) : i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** "14m 55s", "2h 05m", "3d 04h"; "never" for a rule without expiry. */
export function expiresIn(seconds: number | null, expiresAt: string | null): string {
  if (seconds === null || expiresAt === null) return 'never';
  if (seconds < 60) return `${seconds}s`;
  const [d, h, m, s] = [Math.floor(seconds / 86_400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60];
  if (d > 0) return `${d}d ${pad(h)}h`;
  if (h > 0) return `${h}h ${pad(m)}m`;
  return `${m}m ${pad(s)}s`;
}

/** Bytes in binary units: "180 B", "2.1 KiB", "3.4 MiB". */
export function bytes(value: number | null): string {
  if (value === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  let scaled = value;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${scaled.toFixed(1)} ${units[unit]}`;
}

function count(value: number | null): string {
  return value === null ? '-' : String(value);
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
