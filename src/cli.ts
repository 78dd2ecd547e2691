#!/usr/bin/env node
/** The command line at the edge: parse, then run the daemon or reset; user errors are one line. */
import { readFileSync } from 'node:fs';
import { DEFAULTS, parseConfig, type Config } from './config/config.js';
import { runStatus } from './admin/status.js';
import { runCheck } from './config/check.js';
import { runSuggest } from './admin/suggestions.js';
import { startDaemon } from './daemon/daemon.js';
import { dockerClient } from './docker/network.js';
import { ApplyError, ConfigError } from './util/errors.js';
import { iptablesRunner } from './firewall/iptables.js';
import { removeOwned, type Removed } from './firewall/reset.js';
import { BLOCKED_SETS } from './firewall/blocked.js';
import { removeTable } from './firewall/nft/reset.js';
import { nftRunner } from './firewall/nft/runner.js';
import { destroyOwnedSet } from './firewall/ipset-backend.js';
import { OWNED_SETS, POLICY_SET_PREFIX, SET_V4, SET_V6 } from './firewall/ipset.js';
import { execIpset, persistentIpset } from './firewall/ipset-runner.js';
import { createLogger, type Logger } from './util/log.js';

const HELP = `on-his-name - a DNS-driven egress firewall for Docker hosts

Usage:
  on-his-name [options] PATTERN...     allow containers to reach what PATTERNs resolve to
  on-his-name reset                    remove every rule on-his-name owns in DOCKER-USER
                                       (iptables and ip6tables), and its ipset
  on-his-name status [--admin-listen ADDR]
                                       the open addresses (name, client, expiry,
                                       counters) and patterns, from a running daemon

Containers on the Docker network may open tcp connections (--ports) only to addresses
that a DNS answer for an allowed name carried. Answers arrive as dnstap from the DNS
server (CoreDNS: dnstap unix://${DEFAULTS.listen} full), or on-his-name reads them
from a DNS server that listens (CoreDNS 1.14.4+: dnstap listen unix:///PATH full, with
--connect unix:///PATH), which reports each answer at once.

Patterns (case-insensitive, trailing dot optional):
  example.com.        that name only
  *.example.com.      one label below example.com (not example.com, not a.b.example.com)
  api-*.example.com.  '*' inside a label matches within that label
  **.example.com.     any depth below example.com (not example.com itself)

Options (environment fallback in brackets):
  --listen PATH        dnstap Unix socket [LISTEN] (default ${DEFAULTS.listen}),
                       or tcp://HOST:PORT (tcp://:PORT: 127.0.0.1; no authentication)
  --connect ADDRESS    dial a DNS server that listens for dnstap readers, unix:///PATH
                       or tcp://HOST:PORT, reconnecting while it is away; repeatable or
                       comma-separated [CONNECT]; without --listen nothing listens
  --socket-uid UID     owner of the socket, the DNS server's user [SOCKET_UID]
  --socket-gid GID     group of the socket [SOCKET_GID]
  --network NAME       Docker network [DOCKER_BRIDGE_NAME] (default ${DEFAULTS.network})
  --interface IFACE    use this host bridge directly, no Docker lookup [INTERFACE]
  --wait-for-network   at start, wait for the network (and Docker) to exist instead
                       of exiting [WAIT_FOR_NETWORK=1]
  --ports LIST         tcp ports to open (default ${DEFAULTS.ports}) [PORTS]
  --allow-all          accept the patterns '*' and '**' that allow every name
  --allow-cidr CIDR    open a private/loopback/link-local IPv4 or IPv6 range on purpose;
                       repeatable or comma-separated [ALLOW_CIDR]
  --min-ttl SECONDS    the shortest TTL counted: a shorter one counts as this long
                       (default ${DEFAULTS.minTtl}) [MIN_TTL]
  --ttl-grace SECONDS  added to every lifetime: open for max(TTL, min-ttl) + grace
                       after the latest answer (default ${DEFAULTS.ttlGrace}) [TTL_GRACE]
  --max-ips N          most addresses open at once; beyond it the one closest to
                       expiry of the pattern holding the most is closed
                       (default ${DEFAULTS.maxIps}) [MAX_IPS]
  --max-ips-per-name N most addresses one name holds open; beyond it the name's
                       oldest is closed (default ${DEFAULTS.maxIpsPerName}) [MAX_IPS_PER_NAME]
  --reconcile-interval SECONDS
                       re-read DOCKER-USER this often and restore what someone
                       removed; 0 never (default ${DEFAULTS.reconcileInterval}) [RECONCILE_INTERVAL]
  --log-level LEVEL    fatal, error, warn, info, debug, trace, silent (default info) [LOG_LEVEL]
  --log-format FORMAT  auto (pretty on a terminal, else JSON), json, pretty [LOG_FORMAT]
  --backend NAME       iptables: one rule per address and port (default); ipset: one set
                       per family (${SET_V4}, ${SET_V6}) matched by one rule, flat cost
                       for many addresses [BACKEND]
  --admin-listen ADDR  serve /metrics (Prometheus), /api/accepted, /api/matchers and
                       /healthz over HTTP, without authentication; PORT or :PORT is
                       127.0.0.1:PORT, HOST:PORT or [IPv6]:PORT listens there; off by
                       default [ADMIN_LISTEN]
  -h, --help           this text
  -V, --version        the version

Inline DNS mode (no first packet lost): containers use on-his-name as their DNS server;
it forwards each query and releases an allowed answer once its rules are in the kernel.
  --dns-listen ADDR    answer DNS here over UDP and TCP, e.g. 172.18.0.1:53, or "gateway"
                       for the Docker network's gateway (port 53 unless given) [DNS_LISTEN]
  --dns-upstream ADDR  the resolver to forward to, e.g. CoreDNS on 127.0.0.1:5300 [DNS_UPSTREAM]
  --dns-hold-ms MS     longest an allowed answer waits for its rules, then goes anyway
                       (counted and logged) (default ${DEFAULTS.dnsHoldMs}) [DNS_HOLD_MS]
  --dns-timeout-ms MS  the upstream's time to answer before the client gets SERVFAIL
                       (default ${DEFAULTS.dnsTimeoutMs}) [DNS_TIMEOUT_MS]
  --deny-nxdomain      answer NXDOMAIN for names no pattern allows, without asking
                       upstream (no DNS tunnelling through denied names) [DENY_NXDOMAIN=1]
`;

async function main(): Promise<number> {
  const config = parseConfig(process.argv.slice(2), process.env);
  if (config.command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (config.command === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (config.command === 'status') return runStatus(config.adminListen!);
  if (config.command === 'check') return runCheck(config);
  if (config.command === 'suggest') return runSuggest(config.adminListen!);
  const log = createLogger(config.logLevel, config.logFormat);
  if (config.command === 'reset') return reset(log);
  return run(config, log);
}

async function run(config: Config, log: Logger): Promise<number> {
  // Long-lived iptables-restore (and ipset) processes: an answer's rules reach the kernel in about a millisecond.
  const runners = { runner: iptablesRunner({ persistent: true }), runner6: ip6tablesRunner({ persistent: true }) };
  const longLived: Array<{ close?(): void }> = [runners.runner, runners.runner6];
  const ipset = () => {
    const runner = persistentIpset();
    longLived.push(runner);
    return runner;
  };
  let fatal: ((err: Error) => void) | undefined;
  const ended = new Promise<NodeJS.Signals | Error>((resolve) => {
    // `on`, not `once`, and for good: execa's signal-exit kills the process again with the
    // signal when it finds itself the last listener, which a spent `once` would leave it.
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        log.warn({ signal }, 'a second signal: exiting at once (the rules stay in place)');
        process.exit(1);
      }
      signalled = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    fatal = resolve;
  });
  const nft = () => {
    const runner = nftRunner({ persistent: true });
    longLived.push(runner);
    return runner;
  };
  // SIGHUP reads the policy file again. Its default action ends the process: handled from
  // the start, and one arriving while starting is applied once the daemon is up.
  let reload: ((why: string) => unknown) | undefined;
  let hupWhileStarting = false;
  process.on('SIGHUP', () => (reload ? reload('SIGHUP') : (hupWhileStarting = true)));
  const daemon = await startDaemon(config, { ...runners, ipset, nft, docker: () => dockerClient(), onFatal: (err) => fatal?.(err), log }).catch((err: unknown) => {
    // A child process left running would keep node alive after the error line.
    for (const process of longLived) process.close?.();
    throw err;
  });
  reload = (why) => daemon.reload(why);
  if (hupWhileStarting) reload('SIGHUP while starting');
  const why = await ended;
  if (why instanceof Error) log.fatal({ err: why.message }, 'stopping: the firewall can no longer keep its promise; rules stay in place');
  else log.info({ signal: why, allowed: daemon.firewall.allowedCount }, 'stopping; rules stay in place so egress stays closed');
  await daemon.close();
  if (why instanceof Error) throw why;
  return 0;
}

async function reset(log: Logger): Promise<number> {
  const removed = await removeOwned(iptablesRunner());
  report(removed, '');
  process.stdout.write(`removed ${removed.rules.length} rule(s) and ${removed.chains.length} chain(s) owned by on-his-name from iptables\n`);
  // ip6tables may be missing: then there is nothing of ours there.
  const removed6 = await removeOwned(ip6tablesRunner()).catch((err: Error) => {
    log.debug({ err: err.message }, 'no IPv6 rules to remove');
    return { rules: [], chains: [] };
  });
  report(removed6, ' (ip6tables)');
  if (removed6.rules.length + removed6.chains.length) {
    process.stdout.write(`removed ${removed6.rules.length} rule(s) and ${removed6.chains.length} chain(s) owned by on-his-name from ip6tables\n`);
  }
  // After the rules: the kernel refuses to destroy a set that a rule still names.
  const ipset = execIpset();
  const policySets = await ipset.names().then(
    (names) => names.filter((name) => name.startsWith(POLICY_SET_PREFIX)),
    (err: Error) => {
      log.debug({ err: err.message }, 'no ipset sets to remove');
      return [];
    },
  );
  for (const set of [...OWNED_SETS, ...policySets, ...Object.values(BLOCKED_SETS)]) if (await destroyOwnedSet(ipset, set)) process.stdout.write(`removed: ipset ${set}\n`);
  const table = await removeTable(nftRunner()).catch((err: Error) => {
    log.debug({ err: err.message }, 'no nftables table to remove');
    return undefined;
  });
  if (table) process.stdout.write(`removed: table inet on-his-name (${table})\n`);
  log.debug({ removed: removed.rules.length, removed6: removed6.rules.length }, 'reset done');
  return 0;
}

function report(removed: Removed, family: string): void {
  for (const rule of removed.rules) process.stdout.write(`removed${family}: -A ${rule.role === 'host-jump' ? 'INPUT' : (rule.chain ?? 'DOCKER-USER')} ${rule.spec}\n`);
  for (const { chain, rules } of removed.chains) process.stdout.write(`removed${family}: chain ${chain} (${rules} rule(s))\n`);
}

function ip6tablesRunner(options: { persistent?: boolean } = {}) {
  return iptablesRunner({ iptables: 'ip6tables', restore: 'ip6tables-restore', ...options });
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`on-his-name: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof ApplyError) {
      process.stderr.write(`on-his-name: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`on-his-name: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
    // What a failed start had already opened (the dnstap socket, a long-lived ipset) would
    // keep it running, and systemd's Restart=on-failure would never see it fail.
    process.exit();
  },
);
