/**
 * `on-his-name suggest`: ask a running daemon what it blocked, as policy-file text to
 * review and paste. Like status, it reads the admin API only.
 */
import type { AdminAddress } from '../config/config.js';
import type { Suggestion } from '../blocked/suggest.js';
import type { PoliciesView, SuggestionsView } from './api.js';
import { adminUrl, getJson, unreachable } from './status.js';

export async function runSuggest(
  address: AdminAddress,
  out: { write(text: string): unknown } = process.stdout,
  err: { write(text: string): unknown } = process.stderr,
): Promise<number> {
  const base = adminUrl(address);
  let view: SuggestionsView;
  let policies: PoliciesView;
  try {
    [view, policies] = await Promise.all([getJson<SuggestionsView>(`${base}/api/suggestions`), getJson<PoliciesView>(`${base}/api/policies`)]);
  } catch (e) {
    err.write(unreachable(base, address, e));
    return 1;
  }
  if (!view.enabled) {
    err.write('on-his-name: the daemon records nothing blocked (--blocked-interval 0, or the iptables backend without ipset): nothing to suggest from\n');
    return 1;
  }
  out.write(renderSuggestions(view.suggestions, policies));
  return 0;
}

/** YAML in the policy file's shape, every line commented with what it rests on. Pure. */
export function renderSuggestions(suggestions: readonly Suggestion[], policies: PoliciesView): string {
  const useful = suggestions.filter((s) => s.allow.length || s.ports.length || s.hardCoded.length);
  if (useful.length === 0) return '# Nothing blocked yet: nothing to suggest.\n';
  const lines = [
    '# on-his-name suggest: what was blocked, as policy-file lines to review before they go in.',
    '# A wildcard covers more names than the ones seen (listed beside it): keep it only if that is meant.',
  ];
  const portsOf = (name: string) => policies.policies.find((p) => p.name === name)?.ports ?? [];
  const allowLines = (s: Suggestion, indent: string) => [
    `${indent}allow:`,
    ...s.allow.map((a) => `${indent}  - "${a.pattern}"  # ${a.names.length > 1 || a.names[0] !== a.pattern ? `seen: ${a.names.join(', ')}; ` : ''}${blocked(a.attempts)}`),
  ];
  const portLine = (s: Suggestion, indent: string) =>
    s.ports.length
      ? [
          `${indent}ports: [${[...portsOf(s.policy), ...s.ports.map((p) => p.port)].map((p) => `"${p}"`).join(', ')}]  # added: ${s.ports
            .map((p) => `${p.port} (${p.names.join(', ')} tried on it, ${blocked(p.attempts)})`)
            .join('; ')}`,
        ]
      : [];
  const byDefault = useful.find((s) => s.policy === 'default');
  if (byDefault && (byDefault.allow.length || byDefault.ports.length)) {
    lines.push('', `# The default policy (every client without a policy of its own)${byDefault.audit ? ', in audit mode' : ''}: the file's top level.`);
    if (byDefault.allow.length) lines.push(...allowLines(byDefault, ''));
    lines.push(...portLine(byDefault, ''));
  }
  const inFile = useful.filter((s) => s.origin === 'file' && (s.allow.length || s.ports.length));
  if (inFile.length) {
    lines.push('', 'policies:');
    for (const s of inFile) {
      lines.push(`  ${s.policy}:${s.audit ? '  # in audit mode' : ''}`);
      if (s.allow.length) lines.push(...allowLines(s, '    '));
      lines.push(...portLine(s, '    '));
    }
  }
  const labelled = useful.filter((s) => s.origin === 'label' && s.allow.length);
  if (labelled.length) {
    lines.push('', "# A container's own policy comes from its label on-his-name.allow: add these there.");
    for (const s of labelled) lines.push(`#   ${s.policy}: ${s.allow.map((a) => a.pattern).join(' ')}`);
  }
  const refused = useful.filter((s) => s.origin === 'refused');
  if (refused.length) lines.push('', '# Containers whose labels were refused open nothing until their labels are fixed (on-his-name status says why).');
  const hardCoded = useful.flatMap((s) => s.hardCoded.map((h) => ({ ...h, policy: s.policy })));
  if (hardCoded.length) {
    lines.push('', '# Hard-coded addresses: no DNS answer named them, so no pattern can open them.');
    for (const h of hardCoded) lines.push(`#   ${h.policy}: ${h.clients.join(', ')} -> ${h.address} ${h.port} (${blocked(h.attempts)})`);
  }
  return `${lines.join('\n')}\n`;
}

function blocked(attempts: number): string {
  return `${attempts} packet${attempts === 1 ? '' : 's'} blocked`;
}
