/**
 * Ports as the operator writes them: `443` (TCP), `tcp/443`, `udp/443`. Pure; a bad one is
 * a ConfigError that names it and the forms accepted.
 */
import { ConfigError } from '../util/errors.js';
import { portNumber } from '../util/host-port.js';
import type { PortSpec, Protocol } from '../firewall/rules.js';

const FORMS = 'a port from 1 to 65535, optionally with its protocol: 443, tcp/443, udp/443';

export function parsePortSpec(text: string, source: string): PortSpec {
  const match = /^(?:(tcp|udp)\/)?(\d{1,5})$/i.exec(text.trim());
  const port = match ? portNumber(match[2]!) : undefined;
  if (!match || port === undefined) throw new ConfigError(`${source} "${text}" is not ${FORMS}`);
  return { protocol: (match[1]?.toLowerCase() ?? 'tcp') as Protocol, port };
}

/** A comma-separated list, each once. */
export function parsePortSpecs(text: string, source: string): PortSpec[] {
  const specs = text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => parsePortSpec(part, source));
  return [...new Map(specs.map((s) => [`${s.protocol}/${s.port}`, s])).values()];
}

/** iptables' multiport match, which the ipset backend's one rule per protocol uses, takes at most 15 ports. */
export const MAX_SET_PORTS = 15;

/** Why `ports` do not fit the ipset backend's rules (more than `max` of one protocol), or undefined. */
export function setPortsRefusal(ports: readonly PortSpec[], max = MAX_SET_PORTS): string | undefined {
  for (const protocol of ['tcp', 'udp'] as const) {
    const count = ports.filter((p) => p.protocol === protocol).length;
    if (count > max) return `--backend ipset opens at most ${max} ${protocol} ports (got ${count})`;
  }
  return undefined;
}

export function formatPortSpec({ protocol, port }: PortSpec): string {
  return `${protocol}/${port}`;
}
