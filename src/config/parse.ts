/**
 * The value parsers of the command line and the environment. Pure: a string and where it
 * came from (the flag or the variable, named in every message) in, a value out, or a
 * ConfigError that names the problem and the fix. Ports are in ports.ts, which the
 * policy file shares; dnstap endpoints in framestream/endpoint.ts.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from '../util/errors.js';
import { isLoopbackHost, portNumber, splitHostPort } from '../util/host-port.js';
import { parseCidr } from '../policy/special-addresses.js';
import type { PortSpec } from '../firewall/rules.js';
import { parsePortSpecs } from './ports.js';

export interface HostPort {
  host: string;
  port: number;
}

/** A TCP address for the admin API; `loopback` is false for anything reachable from elsewhere. */
export interface AdminAddress {
  host: string;
  port: number;
  loopback: boolean;
}

/** A whole number in [min, max]; the message names where the bad value came from. */
export function parseCount(
  flagValue: string | undefined,
  envValue: string | undefined,
  fallback: string,
  rule: { flag: string; env: string; min: number; max: number; unit: string },
): number {
  const value = flagValue ?? (envValue === undefined || envValue === '' ? fallback : envValue);
  const parsed = /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (parsed >= rule.min && parsed <= rule.max) return parsed;
  const source = flagValue !== undefined ? rule.flag : rule.env;
  throw new ConfigError(`${source} "${value}" must be a whole number from ${rule.min} to ${rule.max} (${rule.unit})`);
}

/** A numeric user or group id; nothing when empty. */
export function parseId(value: string | undefined, source: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) {
    throw new ConfigError(`${source} "${value}" must be a numeric id; find it with "id -u USER" (e.g. id -u coredns)`);
  }
  return Number(value);
}

export function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${flag} "${value}" is not one of ${allowed.join(', ')}`);
}

/** An on/off environment variable: 1, true, yes, on or 0, false, no, off (empty: off). */
export function parseSwitch(value: string | undefined, name: string): boolean {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
  throw new ConfigError(`${name}="${value}" must be 1 or 0 (or true, false, yes, no, on, off)`);
}

/** Linux interface names: at most 15 bytes; we also keep them safe to place in iptables-restore text. */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function parseInterfaceName(value: string): string {
  if (INTERFACE_NAME.test(value)) return value;
  throw new ConfigError(`--interface "${value}" is not a Linux interface name (letters, digits, "_.-", at most 15)`);
}

/** At least one port; each as parsePortSpec reads it. */
export function parsePortList(value: string, source: string): PortSpec[] {
  const ports = parsePortSpecs(value, source);
  if (ports.length === 0) throw new ConfigError(`${source} "${value}" names no port: give at least one, e.g. 80,443`);
  return ports;
}

/** Repeatable and comma-separated; each range is checked here so a typo stops the start. */
export function parseCidrs(values: readonly string[]): string[] {
  const cidrs = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  for (const cidr of cidrs) parseCidr(cidr, '--allow-cidr');
  return cidrs;
}

/** HOST, HOST:PORT, or [IPv6]:PORT; the host must be an IP address (nothing to resolve before DNS works). */
export function parseHostPort(value: string, defaultPort: number, flag: string): HostPort {
  const parts = splitHostPort(value);
  if (!parts || !isIP(parts.host)) {
    throw new ConfigError(`${flag} "${value}" must be an IP address with an optional port, e.g. 127.0.0.1:5300 or [::1]:53`);
  }
  return { host: parts.host, port: parts.port === undefined ? defaultPort : parsePort(parts.port, flag) };
}

export function parsePort(value: string, flag: string): number {
  const port = portNumber(value);
  if (port !== undefined) return port;
  throw new ConfigError(`${flag}: port "${value}" must be a number from 1 to 65535`);
}

const ADMIN_FORMS = 'PORT, :PORT, HOST:PORT or [IPv6]:PORT, e.g. 9090 (which is 127.0.0.1:9090)';

/**
 * `PORT` and `:PORT` mean loopback; any other address must be given in full, as an IP
 * literal (no name lookup: what it listens on should not depend on DNS).
 */
export function parseAdminListen(value: string, source: string): AdminAddress {
  const text = value.trim();
  const parts = /^:?\d+$/.test(text) ? { host: '127.0.0.1', port: text.replace(':', '') } : splitHostPort(text);
  if (parts?.port === undefined) throw new ConfigError(`${source} "${value}" must be ${ADMIN_FORMS}`);
  const port = portNumber(parts.port);
  if (port === undefined) throw new ConfigError(`${source} "${value}": the port must be from 1 to 65535 (${ADMIN_FORMS})`);
  const host = parts.host === 'localhost' ? '127.0.0.1' : parts.host;
  const bracketed = text.startsWith('[');
  if (bracketed ? !isIPv6(host) : !isIPv4(host)) {
    throw new ConfigError(
      `${source} "${value}": ${JSON.stringify(parts.host)} is not an ${bracketed ? 'IPv6' : 'IPv4'} address; give an IP address, ` +
        `not a name (${ADMIN_FORMS}, or [::1]:9090)`,
    );
  }
  return { host, port, loopback: isLoopbackHost(host) };
}

/**
 * A pattern of one label without its trailing dot reads like a mistyped command: `on-his-name
 * rset` would otherwise allow the name "rset." and close egress for everything else. A
 * top-level name is still allowed when written with its dot.
 */
export function refuseBareWords(patterns: readonly string[], commands: readonly string[]): void {
  const word = patterns.find((p) => /^[A-Za-z][A-Za-z0-9-]*$/.test(p));
  if (word === undefined) return;
  const near = commands.find((command) => editDistance(word.toLowerCase(), command) <= 2);
  throw new ConfigError(
    `"${word}" is ${near ? `not a command (did you mean "${near}"?)` : 'one label without a dot'}: ` +
      `to allow that top-level name, write it with its trailing dot ("${word}.")`,
  );
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
