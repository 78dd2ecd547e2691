/**
 * Command line and environment → Config. Pure: argv and env in, a Config out or a
 * ConfigError that names the problem and the fix. Flags win over the environment; the
 * environment names are the Go original's. Which flags, variables, defaults and bounds
 * there are is options.ts's table; the value parsers are parse.ts's.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../util/errors.js';
import { formatEndpoint, parseConnectEndpoint, parseListenEndpoint, type Endpoint } from '../framestream/endpoint.js';
import type { PortSpec } from '../firewall/rules.js';
import {
  COMMAND_WORDS,
  OPTIONS,
  PARSE_ARGS_OPTIONS,
  optionSpec,
  type Backend,
  type CountOption,
  type ListOption,
  type OptionName,
  type OptionValues,
  type SwitchOption,
  type TextOption,
} from './options.js';
import {
  oneOf,
  parseAdminListen,
  parseCidrs,
  parseCount,
  parseHostPort,
  parseId,
  parseInterfaceName,
  parsePort,
  parsePortList,
  parseSwitch,
  refuseBareWords,
  type AdminAddress,
  type HostPort,
} from './parse.js';
import { parsePortSpecs, setPortsRefusal } from './ports.js';
import type { LogFormat, LogLevel } from '../util/log.js';

export type { AdminAddress, Backend, HostPort };

export type Command = 'run' | 'reset' | 'status' | 'check' | 'suggest' | 'help' | 'version';

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

export type Env = Readonly<Record<string, string | undefined>>;

export function parseConfig(argv: readonly string[], env: Env): Config {
  const { values, positionals } = parseFlags(argv);
  const read = reader(values, env);
  const named = (COMMAND_WORDS as readonly string[]).includes(positionals[0] ?? '') ? (positionals[0] as Command) : undefined;
  const command: Command = values.help ? 'help' : values.version ? 'version' : (named ?? 'run');
  const patterns = named ? positionals.slice(1) : positionals;
  if (command === 'run' || command === 'check') refuseBareWords(patterns, COMMAND_WORDS);
  const policyFile = read.set('policy');
  if (command === 'reset' && patterns.length > 0) {
    throw new ConfigError(`"reset" takes no pattern (got ${patterns.join(' ')}): run "on-his-name reset" alone`);
  }
  const adminValue = read.set('admin-listen');
  const adminListen = adminValue === undefined ? undefined : parseAdminListen(adminValue, read.source('admin-listen'));
  if ((command === 'status' || command === 'suggest') && patterns.length > 0) {
    throw new ConfigError(`"${command}" takes no pattern (got ${patterns.join(' ')}): run "on-his-name ${command} [--admin-listen ADDR]"`);
  }
  if ((command === 'status' || command === 'suggest') && !adminListen) {
    throw new ConfigError(
      `${command} reads the admin API, and no address was given: start the daemon with --admin-listen ADDR (e.g. 9090), ` +
        `then run "on-his-name ${command} --admin-listen ADDR" (or set ADMIN_LISTEN)`,
    );
  }

  const socketUid = parseId(read.given('socket-uid'), read.source('socket-uid'));
  const socketGid = parseId(read.given('socket-gid'), read.source('socket-gid'));
  const given = read.given('interface');
  const iface = given === undefined ? undefined : parseInterfaceName(given);
  const backend = oneOf(read.given('backend') ?? OPTIONS.backend.default, OPTIONS.backend.choices, '--backend');
  const ports = parsePortList(read.given('ports') ?? OPTIONS.ports.default, read.source('ports'));
  const dns = parseInlineDns(values, read);
  const tooMany = backend === 'ipset' ? setPortsRefusal(ports) : undefined;
  if (tooMany) throw new ConfigError(`${tooMany}: give fewer --ports, or use another backend`);
  return {
    command,
    patterns,
    allowAll: read.on('allow-all'),
    ...(policyFile !== undefined ? { policyFile } : {}),
    ...parseSources(values, read, socketUid ?? socketGid),
    ...(socketUid !== undefined ? { socketUid } : {}),
    ...(socketGid !== undefined ? { socketGid } : {}),
    network: read.given('network') ?? OPTIONS.network.default,
    ...(iface !== undefined ? { interface: iface } : {}),
    ports,
    hostPorts: parsePortSpecs(read.given('host-ports') ?? '', read.source('host-ports')),
    allowCidrs: parseCidrs(read.list('allow-cidr')),
    minTtl: read.count('min-ttl'),
    ttlGrace: read.count('ttl-grace'),
    maxIps: read.count('max-ips'),
    maxIpsPerName: read.count('max-ips-per-name'),
    reconcileInterval: read.count('reconcile-interval'),
    logLevel: oneOf(read.given('log-level') ?? OPTIONS['log-level'].default, OPTIONS['log-level'].choices, '--log-level'),
    logFormat: oneOf(read.given('log-format') ?? OPTIONS['log-format'].default, OPTIONS['log-format'].choices, '--log-format'),
    backend,
    ...(dns ? { dns } : {}),
    ...(adminListen ? { adminListen } : {}),
    waitForNetwork: read.on('wait-for-network'),
    audit: read.on('audit'),
    blockedInterval: read.count('blocked-interval'),
  };
}

type Reader = ReturnType<typeof reader>;

/**
 * Each option's value as the table names it: the flag, else its environment variable.
 * Some options take an empty variable as unset (`set`), others as a value (`given`), as
 * they always have.
 */
function reader(values: OptionValues, env: Env) {
  const envOf = (name: OptionName): string | undefined => {
    const variable = optionSpec(name).env;
    return variable === undefined ? undefined : env[variable];
  };
  return {
    /** The flag, else its environment variable, an empty one included. */
    given: (name: TextOption): string | undefined => values[name] ?? envOf(name),
    /** The flag, else its environment variable unless it is empty. */
    set: (name: TextOption): string | undefined => values[name] ?? (envOf(name) || undefined),
    /** The flag's values, else the environment variable's one value unless it is empty. */
    list: (name: ListOption): string[] => values[name] ?? (envOf(name) ? [envOf(name)!] : []),
    /** A switch: the flag, else the variable read as 1/0, true/false, yes/no, on/off. */
    on: (name: SwitchOption): boolean => values[name] ?? parseSwitch(envOf(name), optionSpec(name).env ?? `--${name}`),
    /** A whole number within the table's bounds; the variable's empty value is the default. */
    count: (name: CountOption): number => {
      const option = OPTIONS[name];
      return parseCount(values[name], env[option.env], option.default, { flag: `--${name}`, env: option.env, ...option.count });
    },
    /** What a message calls the value's source: the flag when it was given, else the variable. */
    source: (name: TextOption | ListOption): string => (values[name] !== undefined ? `--${name}` : (optionSpec(name).env ?? `--${name}`)),
  };
}

/** --dns-listen turns inline mode on; the other --dns-* flags only make sense with it. */
function parseInlineDns(values: OptionValues, read: Reader): InlineDns | undefined {
  const listen = read.set('dns-listen');
  const upstream = read.set('dns-upstream');
  const denyNxdomain = read.on('deny-nxdomain');
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
    holdMs: read.count('dns-hold-ms'),
    upstreamTimeoutMs: read.count('dns-timeout-ms'),
    denyNxdomain,
  };
}

function parseFlags(argv: readonly string[]): { values: OptionValues; positionals: string[] } {
  try {
    return parseArgs({ args: [...argv], options: PARSE_ARGS_OPTIONS, allowPositionals: true, strict: true }) as { values: OptionValues; positionals: string[] };
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
function parseSources(values: OptionValues, read: Reader, socketId: number | undefined): { listen?: Endpoint; connect: Endpoint[] } {
  const source = read.source('connect');
  const parsed = read
    .list('connect')
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => parseConnectEndpoint(v, source));
  // One connection per producer: the same one named twice would report every answer twice.
  const connect = [...new Map(parsed.map((e) => [formatEndpoint(e), e])).values()];
  const listenValue = read.given('listen') ?? (connect.length === 0 ? OPTIONS.listen.default : undefined);
  // An empty --listen is named LISTEN in its error, as it always was.
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
