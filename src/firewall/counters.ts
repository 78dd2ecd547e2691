/**
 * The kernel's packet and byte counters per address we opened, from the text the tools
 * print. Pure; no I/O. Either way a counter counts what met our accept rule or set: the
 * first packet of each new connection (the rest of a flow meets the established rule).
 *
 * iptables-save -c -t filter, one line per rule, one rule per address and port:
 *   [3:180] -A DOCKER-USER -d 198.51.100.10/32 -i br0 -p tcp -m tcp --dport 80 -m comment --comment "on-his-name exp=… example.com." -j ACCEPT
 * ipset list -o save SET, one element per address:
 *   add on-his-name-v4 198.51.100.10 timeout 299 packets 3 bytes 180 comment "example.com."
 */
import type { Counters } from './backend.js';
import { parseSave } from './ipset.js';
import { parseOwnedRule } from './rules.js';

const COUNTED_RULE = /^\[(\d+):(\d+)\] (-A .*)$/;

/** Sums the ports of each address's accept rules on `bridge` in `chain`; rules that are not ours are never read. */
export function ruleCounters(saveText: string, bridge: string, chain?: string): Map<string, Counters> {
  const counters = new Map<string, Counters>();
  for (const line of saveText.split('\n')) {
    const counted = COUNTED_RULE.exec(line.trim());
    if (!counted) continue;
    const rule = parseOwnedRule(counted[3]!);
    if (rule?.role !== 'accept' || rule.bridge !== bridge || rule.address === undefined || rule.chain !== chain) continue;
    const sum = counters.get(rule.address) ?? { packets: 0, bytes: 0 };
    counters.set(rule.address, { packets: sum.packets + Number(counted[1]), bytes: sum.bytes + Number(counted[2]) });
  }
  return counters;
}

/** Each element's counters; an element listed without them (a set made without `counters`) is left out. */
export function setCounters(saveText: string, set: string): Map<string, Counters> {
  const counters = new Map<string, Counters>();
  for (const element of parseSave(saveText, set)?.elements ?? []) {
    if (element.packets !== undefined && element.bytes !== undefined) {
      counters.set(element.address, { packets: element.packets, bytes: element.bytes });
    }
  }
  return counters;
}
