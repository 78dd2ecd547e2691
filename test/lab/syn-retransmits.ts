/** TCP SYN retransmits counted by a network namespace's kernel (/proc/net/netstat, TcpExt TCPSynRetrans). */
export function synRetransmits(netstat: string): number {
  const lines = netstat.split('\n').filter((line) => line.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const at = names.indexOf('TCPSynRetrans');
  if (at < 0) throw new Error('no TCPSynRetrans in /proc/net/netstat');
  return Number(values[at]);
}

/** The same, as a shell snippet for containers that only have busybox. */
export const SYN_RETRANSMITS_SH =
  `awk '/^TcpExt:/ { if (!seen) { for (i = 1; i <= NF; i++) if ($i == "TCPSynRetrans") col = i; seen = 1 } else print $col }' /proc/net/netstat`;
