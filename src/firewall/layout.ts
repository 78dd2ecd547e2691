/** What a firewall of one family filters on one bridge: the shape every backend and the planner share. */
import type { DnsTarget, PortSpec } from './rules.js';

export interface Layout {
  bridge: string;
  /** Opened for each allowed address: TCP or UDP ports. */
  ports: readonly PortSpec[];
  /** Address family of the table (iptables 4, ip6tables 6); 4 when absent. */
  family?: 4 | 6;
  /** The network's subnets of this family: the only source addresses the bridge may carry. */
  subnets: readonly string[];
  /** Where on the host containers may ask DNS (the gateway, port 53), UDP and TCP. */
  dns: readonly DnsTarget[];
  /** Host ports opened to the containers on purpose (--host-ports). */
  hostPorts: readonly PortSpec[];
  /** Audit mode: the last rule lets through what it would drop (after recording it). */
  audit?: boolean;
  /** The ipset ON-HIS-NAME-RECORD adds blocked attempts to; absent: nothing is recorded (no ipset). */
  record?: string;
}
