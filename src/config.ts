/**
 * Command line and environment → Config. Pure: argv and env in, a Config out or a
 * ConfigError that names the problem and the fix. Flags win over the environment; the
 * environment names are the Go original's.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';
import { parseCidr } from './policy/special-addresses.js';

export type Command = 'run' | 'reset' | 'help' | 'version';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'auto' | 'json' | 'pretty';
/** iptables: one rule per address and port (what `iptables -vL` shows); ipset: one set, one rule. */
export type Backend = 'iptables' | 'ipset';

export interface Config {
  command: Command;
  patterns: string[];
  allowAll: boolean;
  listen: string;
  socketUid?: number;
  socketGid?: number;
  network: string;
  /** A host bridge interface to use as is, bypassing Docker. */
  interface?: string;
  ports: number[];
  /** Special-purpose ranges (private, loopback…) opened on purpose. */
  allowCidrs: string[];
  /** Seconds: an address lives max(TTL, minTtl) + ttlGrace after its latest answer. */
  minTtl: number;
  ttlGrace: number;
  /** Most addresses open at once; the one closest to expiry is closed first. */
  maxIps: number;
  /** Seconds between reads of DOCKER-USER that restore what someone removed; 0: never. */
  reconcileInterval: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  backend: Backend;
  /** At start, wait for the Docker network (and Docker) to exist instead of exiting. */
  waitForNetwork: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULTS = {
  listen: '/run/on-his-name/dnstap.sock',
  network: 'on-his-name',
  ports: '80,443',
  logLevel: 'info',
  logFormat: 'auto',
  minTtl: '300',
  ttlGrace: '600',
  maxIps: '5000',
  reconcileInterval: '15',
  backend: 'iptables',
} as const;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const BACKENDS: readonly Backend[] = ['iptables', 'ipset'];
/** iptables' multiport match, which the ipset backend's one rule uses, takes at most 15 ports. */
const MAX_SET_PORTS = 15;
/** Linux interface names: at most 15 bytes; we also keep them safe to place in iptables-restore text. */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

const OPTIONS = {
  listen: { type: 'string' },
  'socket-uid': { type: 'string' },
  'socket-gid': { type: 'string' },
  network: { type: 'string' },
  interface: { type: 'string' },
  ports: { type: 'string' },
  'allow-cidr': { type: 'string', multiple: true },
  'min-ttl': { type: 'string' },
  'ttl-grace': { type: 'string' },
  'max-ips': { type: 'string' },
  'reconcile-interval': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  backend: { type: 'string' },
  'allow-all': { type: 'boolean' },
  'wait-for-network': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

export function parseConfig(argv: readonly string[], env: Env): Config {
  const { values, positionals } = parseFlags(argv);
  const command: Command = values.help ? 'help' : values.version ? 'version' : positionals[0] === 'reset' ? 'reset' : 'run';
  const patterns = command === 'reset' ? positionals.slice(1) : positionals;
  if (command === 'reset' && patterns.length > 0) {
    throw new ConfigError(`"reset" takes no pattern (got ${patterns.join(' ')}): run "on-his-name reset" alone`);
  }

  const socketUid = parseId(values['socket-uid'] ?? env.SOCKET_UID, values['socket-uid'] ? '--socket-uid' : 'SOCKET_UID');
  const socketGid = parseId(values['socket-gid'] ?? env.SOCKET_GID, values['socket-gid'] ? '--socket-gid' : 'SOCKET_GID');
  const iface = values.interface ?? env.INTERFACE;
  if (iface !== undefined && !INTERFACE_NAME.test(iface)) {
    throw new ConfigError(`--interface "${iface}" is not a Linux interface name (letters, digits, "_.-", at most 15)`);
  }
  const backend = oneOf(values.backend ?? env.BACKEND ?? DEFAULTS.backend, BACKENDS, '--backend');
  const ports = parsePorts(values.ports ?? env.PORTS ?? DEFAULTS.ports);
  if (backend === 'ipset' && ports.length > MAX_SET_PORTS) {
    throw new ConfigError(`--backend ipset opens at most ${MAX_SET_PORTS} ports (got ${ports.length}): give fewer --ports, or use --backend iptables`);
  }
  return {
    command,
    patterns,
    allowAll: values['allow-all'] ?? false,
    listen: parseListen(values.listen ?? env.LISTEN ?? DEFAULTS.listen, values.listen ? '--listen' : 'LISTEN'),
    ...(socketUid !== undefined ? { socketUid } : {}),
    ...(socketGid !== undefined ? { socketGid } : {}),
    network: values.network ?? env.DOCKER_BRIDGE_NAME ?? DEFAULTS.network,
    ...(iface !== undefined ? { interface: iface } : {}),
    ports,
    allowCidrs: parseCidrs(values['allow-cidr'] ?? (env.ALLOW_CIDR ? [env.ALLOW_CIDR] : [])),
    minTtl: parseCount(values['min-ttl'], env.MIN_TTL, DEFAULTS.minTtl, { flag: '--min-ttl', env: 'MIN_TTL', min: 1, max: WEEK, unit: 'seconds' }),
    ttlGrace: parseCount(values['ttl-grace'], env.TTL_GRACE, DEFAULTS.ttlGrace, { flag: '--ttl-grace', env: 'TTL_GRACE', min: 0, max: WEEK, unit: 'seconds' }),
    maxIps: parseCount(values['max-ips'], env.MAX_IPS, DEFAULTS.maxIps, { flag: '--max-ips', env: 'MAX_IPS', min: 1, max: 1_000_000, unit: 'addresses' }),
    reconcileInterval: parseCount(values['reconcile-interval'], env.RECONCILE_INTERVAL, DEFAULTS.reconcileInterval, {
      flag: '--reconcile-interval',
      env: 'RECONCILE_INTERVAL',
      min: 0,
      max: 86_400,
      unit: 'seconds (0 turns it off)',
    }),
    logLevel: oneOf(values['log-level'] ?? env.LOG_LEVEL ?? DEFAULTS.logLevel, LOG_LEVELS, '--log-level'),
    logFormat: oneOf(values['log-format'] ?? env.LOG_FORMAT ?? DEFAULTS.logFormat, LOG_FORMATS, '--log-format'),
    backend,
    waitForNetwork: values['wait-for-network'] ?? parseSwitch(env.WAIT_FOR_NETWORK, 'WAIT_FOR_NETWORK'),
  };
}

/** An on/off environment variable: 1, true, yes or 0, false, no (empty: off). */
function parseSwitch(value: string | undefined, name: string): boolean {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  if (v === '1' || v === 'true' || v === 'yes') return true;
  throw new ConfigError(`${name}="${value}" must be 1 or 0 (or true, false, yes, no)`);
}

function parseFlags(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? String(err);
    throw new ConfigError(`${message.replace(/\. To specify a positional.*$/, '')}: see "on-his-name --help"`, {
      cause: err,
    });
  }
}

/** A Unix socket path; `unix://` is accepted for symmetry with Corefile syntax. */
function parseListen(value: string, source: string): string {
  const path = value.startsWith('unix://') ? value.slice('unix://'.length) : value;
  if (path.startsWith('/') || path.startsWith('./') || path.startsWith('../')) return path;
  if (/^[^/]*:\d+$/.test(path) || path.startsWith('tcp://')) {
    throw new ConfigError(
      `${source}=${value} is a TCP address; on-his-name listens on a Unix socket path such as ${DEFAULTS.listen}`,
    );
  }
  throw new ConfigError(`${source} "${value}" must be a Unix socket path starting with "/" or "./"`);
}

function parsePorts(value: string): number[] {
  const ports = value.split(',').map((part) => part.trim());
  const parsed = ports.map((part) => (/^\d{1,5}$/.test(part) ? Number(part) : NaN));
  const bad = ports.find((_, i) => !(parsed[i]! >= 1 && parsed[i]! <= 65535));
  if (bad !== undefined || ports.length === 0) {
    throw new ConfigError(`--ports "${value}" must be a comma-separated list of TCP ports from 1 to 65535, e.g. 80,443`);
  }
  return [...new Set(parsed)];
}

/** Repeatable and comma-separated; each range is checked here so a typo stops the start. */
function parseCidrs(values: readonly string[]): string[] {
  const cidrs = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  for (const cidr of cidrs) parseCidr(cidr, '--allow-cidr');
  return cidrs;
}

const WEEK = 7 * 86_400;

/** A whole number in [min, max]; the message names where the bad value came from. */
function parseCount(
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

function parseId(value: string | undefined, source: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) {
    throw new ConfigError(`${source} "${value}" must be a numeric id; find it with "id -u USER" (e.g. id -u coredns)`);
  }
  return Number(value);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${flag} "${value}" is not one of ${allowed.join(', ')}`);
}
