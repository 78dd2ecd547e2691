/**
 * The firewall lab for the hostile-container suites: createFirewallLab plus a place for the
 * dnstap socket, and the real CLI started on the lab's bridge with --interface, either
 * running or refusing to start. close() stops the CLI and every helper registered with
 * `track`, then removes the lab; the lab's own exit hooks remove the namespaces if the
 * process dies first.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFirewallLab, type FirewallLabOptions, type FirewallLab } from './firewall-lab.js';
import { startCli, type CliProcess } from '../support/cli-process.js';

export interface HostileLab {
  lab: FirewallLab;
  /** The dnstap socket every daemon here listens on (no producer connects: answers come inline). */
  socket: string;
  /** The daemon started last, while it runs. */
  daemon: CliProcess | undefined;
  /** Start the CLI on the lab's bridge with `args`, and wait until it runs (or rejects with what it said). */
  start(args: readonly string[]): Promise<CliProcess>;
  /** Start the CLI and wait until it runs or exits: the exit code and its stderr, or the running daemon. */
  startOrExit(args: readonly string[], timeoutMs?: number): Promise<{ exitCode: number | undefined; stderr: string } | { running: CliProcess }>;
  stopDaemon(): Promise<void>;
  /** GET http://127.0.0.1:PORT/PATH from inside the host namespace (the daemon's --admin-listen): status and body. */
  admin(port: number, path: string): Promise<{ status: number; body: string }>;
  /** A gauge or counter from the daemon's /metrics (summed over its label sets), e.g. `on_his_name_addresses_installed`. */
  metric(port: number, name: string): Promise<number>;
  /** Stopped at close(), newest first, before the lab goes. */
  track<T extends { stop(): Promise<unknown> }>(helper: T): T;
  close(): Promise<void>;
}

export async function createHostileLab(options: Omit<FirewallLabOptions, 'dnstapSocket'> = {}): Promise<HostileLab> {
  const dir = await mkdtemp(join(tmpdir(), 'ohn-hostile-'));
  await chmod(dir, 0o755);
  const socket = join(dir, 'dnstap.sock');
  let lab: FirewallLab;
  try {
    lab = await createFirewallLab({ ...options, dnstapSocket: socket });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const helpers: Array<{ stop(): Promise<unknown> }> = [];
  const launch = (args: readonly string[]) => startCli(lab.host.name, ['--interface', lab.bridge, '--listen', socket, ...args]);
  const self: HostileLab = {
    lab,
    socket,
    daemon: undefined,
    async start(args) {
      await self.stopDaemon();
      const daemon = launch(args);
      self.daemon = daemon;
      await daemon.waitFor((line) => line.msg === 'on-his-name is running', 20_000);
      return daemon;
    },
    async startOrExit(args, timeoutMs = 20_000) {
      await self.stopDaemon();
      const daemon = launch(args);
      self.daemon = daemon;
      const outcome = await daemon.waitFor((line) => line.msg === 'on-his-name is running', timeoutMs).then(
        () => ({ running: daemon }),
        (err: unknown) => ({ err }),
      );
      if ('running' in outcome) return outcome;
      // waitFor gives up at once when the process has exited, otherwise only at the timeout.
      const exit = await Promise.race([daemon.exited.then((exitCode) => ({ exitCode, stderr: daemon.stderr() })), new Promise<undefined>((r) => setTimeout(r, 2_000))]);
      if (!exit) throw outcome.err;
      return exit;
    },
    async stopDaemon() {
      const daemon = self.daemon;
      self.daemon = undefined;
      await daemon?.stop();
    },
    async admin(port, path) {
      const out = await lab.hostExec('curl', ['-s', '--max-time', '5', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${path}`]);
      const at = out.lastIndexOf('\n');
      return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
    },
    async metric(port, name) {
      const { body } = await self.admin(port, '/metrics');
      let sum = 0;
      for (const line of body.split('\n')) {
        const match = /^(\S+?)(?:\{[^}]*\})? (\S+)$/.exec(line);
        if (match?.[1] === name) sum += Number(match[2]);
      }
      return sum;
    },
    track(helper) {
      helpers.push(helper);
      return helper;
    },
    async close() {
      await self.stopDaemon();
      for (const helper of helpers.splice(0).reverse()) await helper.stop().catch(() => undefined);
      await lab.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
