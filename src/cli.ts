#!/usr/bin/env node
/** The command line at the edge: parse, then run the daemon or reset; user errors are one line. */
import { readFileSync } from 'node:fs';
import { parseConfig, type Config } from './config/config.js';
import { renderHelp } from './config/help.js';
import { runStatus } from './admin/status.js';
import { runCheck } from './admin/check.js';
import { runSuggest } from './admin/suggestions.js';
import { startDaemon } from './daemon/daemon.js';
import { dockerClient } from './docker/client.js';
import { ApplyError, ConfigError } from './util/errors.js';
import { iptablesRunner } from './firewall/iptables.js';
import { removeOwned, type Removed } from './firewall/reset.js';
import { BLOCKED_SETS } from './firewall/blocked.js';
import { removeTable } from './firewall/nft/reset.js';
import { nftRunner } from './firewall/nft/runner.js';
import { nftMonitor } from './host/ruleset-watch.js';
import { destroyOwnedSet } from './firewall/ipset-backend.js';
import { OWNED_SETS, POLICY_SET_PREFIX } from './firewall/ipset.js';
import { execIpset, persistentIpset } from './firewall/ipset-runner.js';
import { createLogger, type Logger } from './util/log.js';

async function main(): Promise<number> {
  const config = parseConfig(process.argv.slice(2), process.env);
  if (config.command === 'help') {
    process.stdout.write(renderHelp());
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
  const daemon = await startDaemon(config, { ...runners, ipset, nft, docker: () => dockerClient(), rulesetMonitor: nftMonitor(), onFatal: (err) => fatal?.(err), log }).catch((err: unknown) => {
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
