/** Suites that build network namespaces need root; without it they skip and say why. */
export function canUseNamespaces(): boolean {
  return process.getuid?.() === 0 && process.platform === 'linux';
}

export function skipNote(): string {
  return canUseNamespaces() ? '' : ' (skipped: needs root and network namespaces; CI runs it as root)';
}
