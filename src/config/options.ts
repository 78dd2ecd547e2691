/**
 * Every option and command of the command line, once. parseConfig (config.ts) reads the
 * flags, environment variables, defaults, bounds and choices from here; `--help`
 * (help.ts) and the README's option table (`npm run docs:options`) are rendered from
 * here, and test/unit/config/options.test.ts fails when one of them disagrees.
 *
 * A description is what the option does, true to the code, in one or two lines; `code`
 * in backticks is kept in the README and loses its backticks in `--help`.
 */
import type { ParseArgsConfig } from 'node:util';
import type { LogFormat, LogLevel } from '../util/log.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LogLevel[];
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const satisfies readonly LogFormat[];
/**
 * iptables: one rule per address and port in DOCKER-USER (what `iptables -vL` shows); ipset:
 * one set per family behind one rule; nftables: a table of our own; auto: firewall/choose.ts.
 */
export const BACKENDS = ['auto', 'iptables', 'ipset', 'nftables'] as const;

export type Backend = (typeof BACKENDS)[number];

const WEEK = 7 * 86_400;

/** The groups `--help` and the README show the options in, in this order. */
export const SECTIONS = {
  sources: { title: 'Where DNS answers come from (dnstap)' },
  network: { title: 'The network filtered' },
  opens: { title: 'What opens' },
  policies: { title: 'Policies' },
  lifetimes: { title: 'How long an address stays open, and how many' },
  firewall: { title: 'The firewall' },
  inline: {
    title: 'Inline DNS mode (no first packet lost)',
    intro:
      "Containers use on-his-name as their DNS server: it forwards each query to `--dns-upstream` and releases an allowed answer once its rules are in the kernel. `--dns-listen` turns it on; it answers only the network's own containers.",
  },
  blocked: { title: 'What is blocked, and audit mode' },
  admin: { title: 'Admin API' },
  logging: { title: 'Logging' },
  general: { title: 'This program' },
} as const satisfies Record<string, { title: string; intro?: string }>;

export type Section = keyof typeof SECTIONS;

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Given more than once, each value kept. */
  multiple?: boolean;
  /** A one-letter alias, `-h`. */
  short?: string;
  /** The environment variable read when the flag is not given (the Go original's names). */
  env?: string;
  /** The value used when neither the flag nor the environment gives one, as it would be written. */
  default?: string;
  /** What the documentation shows when there is no default value: who owns it, or off. */
  unset?: string;
  /** The value's name in `--help` and the README: `--ports LIST`. */
  placeholder?: string;
  /** A whole number in [min, max]; `unit` ends the message for a value out of bounds. */
  count?: { min: number; max: number; unit: string };
  /** The values accepted, and no other. */
  choices?: readonly string[];
  section: Section;
  description: string;
}

/**
 * The options, in the order they are documented. The environment is read per option as
 * parseConfig says (some treat an empty variable as unset, others as a value).
 */
export const OPTIONS = {
  listen: {
    type: 'string',
    env: 'LISTEN',
    default: '/run/on-his-name/dnstap.sock',
    placeholder: 'PATH',
    section: 'sources',
    description:
      'the Unix socket the DNS server pushes dnstap to, or `tcp://HOST:PORT` (`tcp://:PORT` is 127.0.0.1; TCP has no authentication); nothing listens when `--connect` is given without it',
  },
  connect: {
    type: 'string',
    multiple: true,
    env: 'CONNECT',
    placeholder: 'ADDRESS',
    section: 'sources',
    description:
      'dial a DNS server that listens for dnstap readers (CoreDNS 1.14.4+ `dnstap listen`), `unix:///PATH` or `tcp://HOST:PORT`, and again whenever it goes away; repeatable or comma-separated',
  },
  'socket-uid': {
    type: 'string',
    env: 'SOCKET_UID',
    unset: 'root',
    placeholder: 'UID',
    section: 'sources',
    description: "owner of the Unix socket `--listen` makes (mode `0600`): the DNS server's user, e.g. `$(id -u coredns)`",
  },
  'socket-gid': {
    type: 'string',
    env: 'SOCKET_GID',
    unset: 'root',
    placeholder: 'GID',
    section: 'sources',
    description: 'group of that socket, set only with `--socket-uid`; the mode `0600` gives the group no access',
  },
  network: {
    type: 'string',
    env: 'DOCKER_BRIDGE_NAME',
    default: 'on-his-name',
    placeholder: 'NAME',
    section: 'network',
    description: 'the Docker network whose bridge is filtered; followed when it is removed and created again',
  },
  interface: {
    type: 'string',
    env: 'INTERFACE',
    placeholder: 'IFACE',
    section: 'network',
    description: 'filter this host bridge as it is, without asking Docker (plain bridges, LXC, tests); `--network` is then not used',
  },
  'wait-for-network': {
    type: 'boolean',
    env: 'WAIT_FOR_NETWORK',
    section: 'network',
    description: 'at start, wait for the network (and for Docker) to exist instead of exiting, saying so every 30 s',
  },
  ports: {
    type: 'string',
    env: 'PORTS',
    default: '80,443',
    placeholder: 'LIST',
    section: 'opens',
    description:
      "ports opened to each allowed address, comma-separated: `443` and `tcp/443` are TCP, `udp/443` is UDP; the default policy's, and any policy's that names none, unless the policy file has `ports`",
  },
  'host-ports': {
    type: 'string',
    env: 'HOST_PORTS',
    unset: 'none',
    placeholder: 'LIST',
    section: 'opens',
    description: 'ports of the host itself that containers may reach, written as `--ports`; any other connection they open to the host is dropped, but DNS to the gateway',
  },
  'allow-cidr': {
    type: 'string',
    multiple: true,
    env: 'ALLOW_CIDR',
    placeholder: 'CIDR',
    section: 'opens',
    description:
      'let answers open addresses in this special-purpose IPv4 or IPv6 range (private, loopback, link-local, CGNAT…), which are refused otherwise; repeatable or comma-separated',
  },
  'allow-all': {
    type: 'boolean',
    section: 'opens',
    description: 'accept the patterns `*` and `**`, which allow every name',
  },
  policy: {
    type: 'string',
    env: 'POLICY_FILE',
    placeholder: 'FILE',
    section: 'policies',
    description:
      "a YAML file: more patterns for the default policy, and policies of their own for clients (by address range or container label); read again when it changes and on SIGHUP, refused whole on a mistake (try it with `on-his-name check`)",
  },
  'min-ttl': {
    type: 'string',
    env: 'MIN_TTL',
    default: '300',
    placeholder: 'SECONDS',
    count: { min: 1, max: WEEK, unit: 'seconds' },
    section: 'lifetimes',
    description: 'the shortest TTL counted: an answer with a shorter one counts as this long',
  },
  'ttl-grace': {
    type: 'string',
    env: 'TTL_GRACE',
    default: '600',
    placeholder: 'SECONDS',
    count: { min: 0, max: WEEK, unit: 'seconds' },
    section: 'lifetimes',
    description:
      'added to every lifetime: an address stays open max(TTL, min-ttl) + grace after an answer (TTLs count up to a day; a repeat answer extends it only once it lags by grace/2)',
  },
  'max-ips': {
    type: 'string',
    env: 'MAX_IPS',
    default: '5000',
    placeholder: 'N',
    count: { min: 1, max: 1_000_000, unit: 'addresses' },
    section: 'lifetimes',
    description:
      'most addresses open at once, per policy and address family; beyond it the one closest to expiry, of the pattern holding the most, is closed',
  },
  'max-ips-per-name': {
    type: 'string',
    env: 'MAX_IPS_PER_NAME',
    default: '1000',
    placeholder: 'N',
    count: { min: 1, max: 1_000_000, unit: 'addresses' },
    section: 'lifetimes',
    description: "most addresses one name holds open, per policy and address family; beyond it the name's oldest is closed",
  },
  backend: {
    type: 'string',
    env: 'BACKEND',
    default: 'auto',
    placeholder: 'NAME',
    choices: BACKENDS,
    section: 'firewall',
    description:
      '`iptables`: one rule per address and port in `DOCKER-USER`; `ipset`: a set per policy and family behind one rule (at most 15 ports of a protocol); `nftables`: a table of its own; `auto`: `iptables` where FORWARD jumps to `DOCKER-USER` (in ip6tables too when IPv6 must be filtered), else `nftables`',
  },
  'reconcile-interval': {
    type: 'string',
    env: 'RECONCILE_INTERVAL',
    default: '15',
    placeholder: 'SECONDS',
    count: { min: 0, max: 86_400, unit: 'seconds (0 turns it off)' },
    section: 'firewall',
    description:
      'read its rules in the kernel again this often, and at once when `nft monitor` reports a change that could open egress, and put back what someone removed or changed; `0` never',
  },
  'dns-listen': {
    type: 'string',
    env: 'DNS_LISTEN',
    placeholder: 'ADDR',
    section: 'inline',
    description:
      "answer DNS here, UDP and TCP: an IP address (`172.18.0.1:53`, `[fd00::1]:53`) or `gateway`, the network's IPv4 gateway, followed when it changes; port 53 unless given",
  },
  'dns-upstream': {
    type: 'string',
    env: 'DNS_UPSTREAM',
    placeholder: 'ADDR',
    section: 'inline',
    description: 'the resolver each query is forwarded to: an IP address, port 53 unless given (e.g. CoreDNS on `127.0.0.1:5300`); `--dns-listen` needs it',
  },
  'dns-hold-ms': {
    type: 'string',
    env: 'DNS_HOLD_MS',
    default: '200',
    placeholder: 'MS',
    count: { min: 0, max: 10_000, unit: 'milliseconds' },
    section: 'inline',
    description: 'the longest an allowed answer waits for its rules; past it the answer goes anyway, counted and logged',
  },
  'dns-timeout-ms': {
    type: 'string',
    env: 'DNS_TIMEOUT_MS',
    default: '2000',
    placeholder: 'MS',
    count: { min: 100, max: 30_000, unit: 'milliseconds' },
    section: 'inline',
    description: "the upstream's time to answer before the client gets `SERVFAIL`",
  },
  'deny-nxdomain': {
    type: 'boolean',
    env: 'DENY_NXDOMAIN',
    section: 'inline',
    description: "answer `NXDOMAIN` at once for a name the asking client's policy does not allow, never forwarding it (no DNS tunnelling through denied names)",
  },
  'blocked-interval': {
    type: 'string',
    env: 'BLOCKED_INTERVAL',
    default: '5',
    placeholder: 'SECONDS',
    count: { min: 0, max: 3600, unit: 'seconds (0 turns the blocked view off)' },
    section: 'blocked',
    description:
      'read what the kernel recorded as blocked this often, for `status`, `suggest` and `/api/blocked`; `0` records nothing. The iptables backends record through ipset: without it, nothing is recorded',
  },
  audit: {
    type: 'boolean',
    env: 'AUDIT',
    section: 'blocked',
    description: "every policy in audit mode: what it would block is recorded and let through (the policy file's `audit: true` does this for one policy)",
  },
  'admin-listen': {
    type: 'string',
    env: 'ADMIN_LISTEN',
    unset: 'off',
    placeholder: 'ADDR',
    section: 'admin',
    description:
      'serve `/metrics`, `/healthz` and the JSON `/api/…` that `status` and `suggest` read, over HTTP without authentication: `PORT` or `:PORT` is `127.0.0.1:PORT`; `HOST:PORT` or `[IPv6]:PORT` (IP addresses) listen there, with a warning off loopback',
  },
  'log-level': {
    type: 'string',
    env: 'LOG_LEVEL',
    default: 'info',
    placeholder: 'LEVEL',
    choices: LOG_LEVELS,
    section: 'logging',
    description: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`',
  },
  'log-format': {
    type: 'string',
    env: 'LOG_FORMAT',
    default: 'auto',
    placeholder: 'FORMAT',
    choices: LOG_FORMATS,
    section: 'logging',
    description: '`json`, `pretty`, or `auto`: pretty on a terminal, JSON otherwise',
  },
  help: { type: 'boolean', short: 'h', section: 'general', description: 'print the commands and options, and exit' },
  version: { type: 'boolean', short: 'V', section: 'general', description: 'print the version, and exit' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
type Spec<K extends OptionName> = (typeof OPTIONS)[K];

/** The flags as parseArgs returns them, typed by the table. */
export type OptionValues = {
  [K in OptionName]?: Spec<K> extends { type: 'boolean' } ? boolean : Spec<K> extends { multiple: true } ? string[] : string;
};

/** Options whose value is a whole number within bounds, with a default. */
export type CountOption = { [K in OptionName]: Spec<K> extends { count: object; default: string; env: string } ? K : never }[OptionName];
/** Options that are switches. */
export type SwitchOption = { [K in OptionName]: Spec<K> extends { type: 'boolean' } ? K : never }[OptionName];
/** Options that take one string. */
export type TextOption = { [K in OptionName]: Spec<K> extends { type: 'string'; multiple?: never } ? K : never }[OptionName];
/** Options that may be given more than once. */
export type ListOption = { [K in OptionName]: Spec<K> extends { multiple: true } ? K : never }[OptionName];

/** The table, each entry seen as an OptionSpec. */
export function optionSpec(name: OptionName): OptionSpec {
  return OPTIONS[name];
}

/** What parseArgs needs of the table: the type, repeatable or not, the short alias. Never a default: the environment comes between. */
export const PARSE_ARGS_OPTIONS: NonNullable<ParseArgsConfig['options']> = Object.fromEntries(
  Object.entries(OPTIONS as Record<string, OptionSpec>).map(([name, o]) => [name, { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) }]),
);

/**
 * The commands. `run` is what a command line without a command word does; the others are
 * the first word. `usage` follows `on-his-name`.
 */
export const COMMANDS = {
  run: {
    usage: '[options] PATTERN...',
    description: 'filter the network: its containers reach only addresses that DNS answers for allowed names carried (with --policy, PATTERNs may be left out)',
  },
  check: {
    usage: 'check [options] [PATTERN...]',
    description: 'read the options, patterns and policy file as the daemon would, and print the policies they make; touches neither the kernel nor Docker',
  },
  reset: {
    usage: 'reset',
    description: 'remove everything on-his-name put in the kernel: its rules and chains (iptables, ip6tables), its ipsets, its nftables table',
  },
  status: {
    usage: 'status [--admin-listen ADDR]',
    description: "print a running daemon's open addresses, policies, patterns and what it blocked, from its admin API",
  },
  suggest: {
    usage: 'suggest [--admin-listen ADDR]',
    description: 'print what a running daemon saw blocked as policy-file lines, to review before they go in',
  },
} as const satisfies Record<string, { usage: string; description: string }>;

/** The commands given as a first word (`run` is none: it is what no word means). */
export const COMMAND_WORDS = (Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>).filter((c) => c !== 'run');
