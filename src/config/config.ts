/**
 * Command line and environment → Config. Pure: argv and env in, a Config out or a
 * ConfigError that names the problem and the fix. Flags win over the environment; the
 * environment names are the Go original's.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import { ConfigError } from '../util/errors.js';
import { isLoopbackHost, portNumber, splitHostPort } from '../util/host-port.js';
import { formatEndpoint, parseConnectEndpoint, parseListenEndpoint, type Endpoint } from '../framestream/endpoint.js';
import { parseCidr } from '../policy/special-addresses.js';
import type { PortSpec } from '../firewall/rules.js';
import { parsePortSpecs, setPortsRefusal } from './ports.js';

export type Command = 'run' | 'reset' | 'status' | 'check' | 'suggest' | 'help' | 'version';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'auto' | 'json' | 'pretty';
/**
 * iptables: one rule per address and port in DOCKER-USER (what `iptables -vL` shows); ipset:
 * one set per family behind one rule; nftables: a table of our own; auto: firewall/choose.ts.
 */
export type Backend = 'auto' | 'iptables' | 'ipset' | 'nftables';

export interface Config {
  command: Command;
  patterns: string[];
  allowAll: boolean;
  /** The policy file (YAML): the default policy's extra patterns and a policy per service. */
  policyFile?: string;
  /** Where producers push dnstap to us; absent when only --connect is given. */
  listen?: Endpoint;
  /** Producers that listen (CoreDNS `dnstap listen …`): we dial each and keep one connection. */
  connect: Endpoint[];
  socketUid?: number;
  socketGid?: number;
  network: string;
  /** A host bridge interface to use as is, bypassing Docker. */
  interface?: string;
  /** Opened for each allowed address: `443` and `tcp/443` are TCP, `udp/443` is UDP (HTTP/3). */
  ports: PortSpec[];
  /** Host ports containers may reach on the host itself (everything else from the bridge to the host is dropped, but DNS). */
  hostPorts: PortSpec[];
  /** Special-purpose ranges (private, loopback…) opened on purpose. */
  allowCidrs: string[];
  /** Seconds: an address lives max(TTL, minTtl) + ttlGrace after its latest answer. */
  minTtl: number;
  ttlGrace: number;
  /** Most addresses open at once; the one closest to expiry of the pattern holding the most is closed first. */
  maxIps: number;
  /** Most addresses one name holds open; its oldest is closed first. */
  maxIpsPerName: number;
  /** Seconds between reads of DOCKER-USER that restore what someone removed; 0: never. */
  reconcileInterval: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  backend: Backend;
  /** Inline mode: answer the containers' DNS here and hold allowed answers until their rules are in. */
  dns?: InlineDns;
  /** Where the admin API (metrics, status) listens; absent: nowhere. */
  adminListen?: AdminAddress;
  /** At start, wait for the Docker network (and Docker) to exist instead of exiting. */
  waitForNetwork: boolean;
  /** Every policy in audit mode: what would be blocked is recorded and let through. */
  audit: boolean;
  /** Seconds between reads of what the kernel recorded as blocked; 0: no blocked view. */
  blockedInterval: number;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface InlineDns {
  /** 'gateway': the Docker network's gateway address, port 53 unless given. */
  listen: HostPort | { host: 'gateway'; port: number };
  upstream: HostPort;
  /** Longest an allowed answer waits for its rules, in milliseconds. */
  holdMs: number;
  upstreamTimeoutMs: number;
  /** Answer NXDOMAIN for names no pattern allows, without asking upstream. */
  denyNxdomain: boolean;
}

/** A TCP address for the admin API; `loopback` is false for anything reachable from elsewhere. */
export interface AdminAddress {
  host: string;
  port: number;
  loopback: boolean;
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
  maxIpsPerName: '1000',
  reconcileInterval: '15',
  backend: 'auto',
  dnsHoldMs: '200',
  dnsTimeoutMs: '2000',
  blockedInterval: '5',
} as const;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const BACKENDS: readonly Backend[] = ['auto', 'iptables', 'ipset', 'nftables'];
/** Linux interface names: at most 15 bytes; we also keep them safe to place in iptables-restore text. */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

const OPTIONS = {
  listen: { type: 'string' },
  connect: { type: 'string', multiple: true },
  'socket-uid': { type: 'string' },
  'socket-gid': { type: 'string' },
  network: { type: 'string' },
  interface: { type: 'string' },
  ports: { type: 'string' },
  'allow-cidr': { type: 'string', multiple: true },
  'host-ports': { type: 'string' },
  'min-ttl': { type: 'string' },
  'ttl-grace': { type: 'string' },
  'max-ips': { type: 'string' },
  'max-ips-per-name': { type: 'string' },
  'reconcile-interval': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  backend: { type: 'string' },
  'dns-listen': { type: 'string' },
  'dns-upstream': { type: 'string' },
  'dns-hold-ms': { type: 'string' },
  'dns-timeout-ms': { type: 'string' },
  'deny-nxdomain': { type: 'boolean' },
  'admin-listen': { type: 'string' },
  'allow-all': { type: 'boolean' },
  policy: { type: 'string' },
  'wait-for-network': { type: 'boolean' },
  audit: { type: 'boolean' },
  'blocked-interval': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

export function parseConfig(argv: readonly string[], env: Env): Config {
  const { values, positionals } = parseFlags(argv);
  const named = (COMMANDS as readonly string[]).includes(positionals[0] ?? '') ? (positionals[0] as Command) : undefined;
  const command: Command = values.help ? 'help' : values.version ? 'version' : (named ?? 'run');
  const patterns = named ? positionals.slice(1) : positionals;
  if (command === 'run' || command === 'check') refuseBareWords(patterns);
  const policyFile = values.policy ?? (env.POLICY_FILE || undefined);
  if (command === 'reset' && patterns.length > 0) {
    throw new ConfigError(`"reset" takes no pattern (got ${patterns.join(' ')}): run "on-his-name reset" alone`);
  }
  const adminValue = values['admin-listen'] ?? (env.ADMIN_LISTEN || undefined);
  const adminListen = adminValue === undefined ? undefined : parseAdminListen(adminValue, values['admin-listen'] !== undefined ? '--admin-listen' : 'ADMIN_LISTEN');
  if ((command === 'status' || command === 'suggest') && patterns.length > 0) {
    throw new ConfigError(`"${command}" takes no pattern (got ${patterns.join(' ')}): run "on-his-name ${command} [--admin-listen ADDR]"`);
  }
  if ((command === 'status' || command === 'suggest') && !adminListen) {
    throw new ConfigError(
      `${command} reads the admin API, and no address was given: start the daemon with --admin-listen ADDR (e.g. 9090), ` +
        `then run "on-his-name ${command} --admin-listen ADDR" (or set ADMIN_LISTEN)`,
    );
  }

  const socketUid = parseId(values['socket-uid'] ?? env.SOCKET_UID, values['socket-uid'] ? '--socket-uid' : 'SOCKET_UID');
  const socketGid = parseId(values['socket-gid'] ?? env.SOCKET_GID, values['socket-gid'] ? '--socket-gid' : 'SOCKET_GID');
  const iface = values.interface ?? env.INTERFACE;
  if (iface !== undefined && !INTERFACE_NAME.test(iface)) {
    throw new ConfigError(`--interface "${iface}" is not a Linux interface name (letters, digits, "_.-", at most 15)`);
  }
  const backend = oneOf(values.backend ?? env.BACKEND ?? DEFAULTS.backend, BACKENDS, '--backend');
  const ports = parsePortList(values.ports ?? env.PORTS ?? DEFAULTS.ports, values.ports !== undefined ? '--ports' : 'PORTS');
  const dns = parseInlineDns(values, env);
  const tooMany = backend === 'ipset' ? setPortsRefusal(ports) : undefined;
  if (tooMany) throw new ConfigError(`${tooMany}: give fewer --ports, or use another backend`);
  return {
    command,
    patterns,
    allowAll: values['allow-all'] ?? false,
    ...(policyFile !== undefined ? { policyFile } : {}),
    ...parseSources(values, env, socketUid ?? socketGid),
    ...(socketUid !== undefined ? { socketUid } : {}),
    ...(socketGid !== undefined ? { socketGid } : {}),
    network: values.network ?? env.DOCKER_BRIDGE_NAME ?? DEFAULTS.network,
    ...(iface !== undefined ? { interface: iface } : {}),
    ports,
    hostPorts: parsePortSpecs(values['host-ports'] ?? env.HOST_PORTS ?? '', values['host-ports'] !== undefined ? '--host-ports' : 'HOST_PORTS'),
    allowCidrs: parseCidrs(values['allow-cidr'] ?? (env.ALLOW_CIDR ? [env.ALLOW_CIDR] : [])),
    minTtl: parseCount(values['min-ttl'], env.MIN_TTL, DEFAULTS.minTtl, { flag: '--min-ttl', env: 'MIN_TTL', min: 1, max: WEEK, unit: 'seconds' }),
    ttlGrace: parseCount(values['ttl-grace'], env.TTL_GRACE, DEFAULTS.ttlGrace, { flag: '--ttl-grace', env: 'TTL_GRACE', min: 0, max: WEEK, unit: 'seconds' }),
    maxIps: parseCount(values['max-ips'], env.MAX_IPS, DEFAULTS.maxIps, { flag: '--max-ips', env: 'MAX_IPS', min: 1, max: 1_000_000, unit: 'addresses' }),
    maxIpsPerName: parseCount(values['max-ips-per-name'], env.MAX_IPS_PER_NAME, DEFAULTS.maxIpsPerName, {
      flag: '--max-ips-per-name',
      env: 'MAX_IPS_PER_NAME',
      min: 1,
      max: 1_000_000,
      unit: 'addresses',
    }),
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
    ...(dns ? { dns } : {}),
    ...(adminListen ? { adminListen } : {}),
    waitForNetwork: values['wait-for-network'] ?? parseSwitch(env.WAIT_FOR_NETWORK, 'WAIT_FOR_NETWORK'),
    audit: values.audit ?? parseSwitch(env.AUDIT, 'AUDIT'),
    blockedInterval: parseCount(values['blocked-interval'], env.BLOCKED_INTERVAL, DEFAULTS.blockedInterval, {
      flag: '--blocked-interval',
      env: 'BLOCKED_INTERVAL',
      min: 0,
      max: 3600,
      unit: 'seconds (0 turns the blocked view off)',
    }),
  };
}

type Flags = ReturnType<typeof parseFlags>['values'];

/** --dns-listen turns inline mode on; the other --dns-* flags only make sense with it. */
function parseInlineDns(values: Flags, env: Env): InlineDns | undefined {
  const listen = values['dns-listen'] ?? (env.DNS_LISTEN || undefined);
  const upstream = values['dns-upstream'] ?? (env.DNS_UPSTREAM || undefined);
  const denyNxdomain = values['deny-nxdomain'] ?? parseSwitch(env.DENY_NXDOMAIN, 'DENY_NXDOMAIN');
  if (listen === undefined) {
    const orphan = upstream !== undefined ? '--dns-upstream' : denyNxdomain ? '--deny-nxdomain' : values['dns-hold-ms'] ? '--dns-hold-ms' : undefined;
    if (orphan) throw new ConfigError(`${orphan} needs inline mode: add --dns-listen ADDRESS:53 (e.g. --dns-listen gateway)`);
    return undefined;
  }
  if (upstream === undefined) {
    throw new ConfigError('--dns-listen needs --dns-upstream ADDRESS:PORT, the resolver to forward to (e.g. CoreDNS on 127.0.0.1:5300)');
  }
  return {
    listen: listen === 'gateway' || listen.startsWith('gateway:') ? { host: 'gateway', port: parsePort(listen.slice('gateway'.length + 1) || '53', '--dns-listen') } : parseHostPort(listen, 53, '--dns-listen'),
    upstream: parseHostPort(upstream, 53, '--dns-upstream'),
    holdMs: parseCount(values['dns-hold-ms'], env.DNS_HOLD_MS, DEFAULTS.dnsHoldMs, { flag: '--dns-hold-ms', env: 'DNS_HOLD_MS', min: 0, max: 10_000, unit: 'milliseconds' }),
    upstreamTimeoutMs: parseCount(values['dns-timeout-ms'], env.DNS_TIMEOUT_MS, DEFAULTS.dnsTimeoutMs, {
      flag: '--dns-timeout-ms',
      env: 'DNS_TIMEOUT_MS',
      min: 100,
      max: 30_000,
      unit: 'milliseconds',
    }),
    denyNxdomain,
  };
}

/** HOST, HOST:PORT, or [IPv6]:PORT; the host must be an IP address (nothing to resolve before DNS works). */
export function parseHostPort(value: string, defaultPort: number, flag: string): HostPort {
  const parts = splitHostPort(value);
  if (!parts || !isIP(parts.host)) {
    throw new ConfigError(`${flag} "${value}" must be an IP address with an optional port, e.g. 127.0.0.1:5300 or [::1]:53`);
  }
  return { host: parts.host, port: parts.port === undefined ? defaultPort : parsePort(parts.port, flag) };
}

function parsePort(value: string, flag: string): number {
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

/** An on/off environment variable: 1, true, yes, on or 0, false, no, off (empty: off). */
function parseSwitch(value: string | undefined, name: string): boolean {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
  throw new ConfigError(`${name}="${value}" must be 1 or 0 (or true, false, yes, no, on, off)`);
}

const COMMANDS = ['reset', 'status', 'check', 'suggest'] as const;

/**
 * A pattern of one label without its trailing dot reads like a mistyped command: `on-his-name
 * rset` would otherwise allow the name "rset." and close egress for everything else. A
 * top-level name is still allowed when written with its dot.
 */
function refuseBareWords(patterns: readonly string[]): void {
  const word = patterns.find((p) => /^[A-Za-z][A-Za-z0-9-]*$/.test(p));
  if (word === undefined) return;
  const near = COMMANDS.find((command) => editDistance(word.toLowerCase(), command) <= 2);
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

/**
 * Where dnstap comes from: the socket we listen on (the default), producers we dial
 * (--connect, repeatable; CONNECT comma-separated), or both when both are given. With
 * --connect alone nothing listens, so no socket appears that an old Corefile could still use.
 */
function parseSources(
  values: { listen?: string; connect?: string[] },
  env: Env,
  socketId: number | undefined,
): { listen?: Endpoint; connect: Endpoint[] } {
  const fromFlag = values.connect !== undefined;
  const parsed = (values.connect ?? (env.CONNECT ? [env.CONNECT] : []))
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => parseConnectEndpoint(v, fromFlag ? '--connect' : 'CONNECT'));
  // One connection per producer: the same one named twice would report every answer twice.
  const connect = [...new Map(parsed.map((e) => [formatEndpoint(e), e])).values()];
  const listenValue = values.listen ?? env.LISTEN ?? (connect.length === 0 ? DEFAULTS.listen : undefined);
  const listen = listenValue === undefined ? undefined : parseListenEndpoint(listenValue, values.listen ? '--listen' : 'LISTEN');
  if (listen && connect.some((e) => formatEndpoint(e) === formatEndpoint(listen))) {
    throw new ConfigError(
      `--connect ${formatEndpoint(listen)} is where on-his-name itself listens (--listen): connect to the DNS server's own socket, ` +
        'or drop one of the two',
    );
  }
  if (socketId !== undefined && listen?.transport !== 'unix') {
    throw new ConfigError(
      '--socket-uid and --socket-gid (SOCKET_UID, SOCKET_GID) own the Unix socket on-his-name listens on, and there is none here ' +
        `(${listen ? 'TCP' : '--connect alone'}): drop them, or --listen on a Unix socket path`,
    );
  }
  return { ...(listen ? { listen } : {}), connect };
}

/** At least one port; each as parsePortSpec reads it. */
function parsePortList(value: string, source: string): PortSpec[] {
  const ports = parsePortSpecs(value, source);
  if (ports.length === 0) throw new ConfigError(`${source} "${value}" names no port: give at least one, e.g. 80,443`);
  return ports;
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
