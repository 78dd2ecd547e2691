/**
 * Network namespaces for labs: unique short names, links, bridges, addresses, routes, and
 * removal that also kills whatever still runs inside. Nothing here touches the root
 * namespace's firewall; every command runs inside a namespace created here.
 */
import { execa } from 'execa';
import { removeNamespaceSync, onExit } from './cleanup.js';
import { inNamespace } from './exec.js';

let counter = 0;

/** 0 → a, 25 → z, 26 → ba …: always letters, so the pid before it stays unambiguous. */
function letters(n: number): string {
  let out = '';
  do {
    out = String.fromCharCode(97 + (n % 26)) + out;
    n = Math.floor(n / 26);
  } while (n > 0);
  return out;
}

/**
 * `prefix` + pid (mod 10000) + a per-process counter in letters, e.g. `ohnh1234a`: unique
 * among concurrent test processes, and short enough to derive interface names from
 * (Linux allows 15 characters).
 */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid % 10000}${letters(counter++)}`;
}

export class Namespace {
  private removed = false;
  private readonly unregister: () => void;

  private constructor(readonly name: string) {
    this.unregister = onExit(() => removeNamespaceSync(name));
  }

  /** A fresh namespace with loopback up. Registered for removal at process exit. */
  static async create(prefix: string): Promise<Namespace> {
    for (let attempt = 0; ; attempt++) {
      const name = uniqueName(prefix);
      const added = await execa('ip', ['netns', 'add', name], { reject: false });
      if (added.exitCode !== 0) {
        // A leftover of an earlier process with the same pid: take the next name.
        if (/exists/i.test(String(added.stderr)) && attempt < 100) continue;
        throw new Error(`ip netns add ${name} failed: ${added.stderr}`);
      }
      const ns = new Namespace(name);
      try {
        await ns.ip('link', 'set', 'lo', 'up');
      } catch (err) {
        await ns.remove();
        throw err;
      }
      return ns;
    }
  }

  exec(command: string, args: readonly string[]): Promise<string> {
    return inNamespace(this.name, command, args);
  }

  ip(...args: string[]): Promise<string> {
    return this.exec('ip', args);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec('sysctl', ['-qw', `${key}=${value}`]);
  }

  enableForwarding(): Promise<void> {
    return this.sysctl('net.ipv4.ip_forward', 1);
  }

  /** `address` in CIDR form, e.g. 192.0.2.1/24. */
  async addAddress(device: string, address: string): Promise<void> {
    await this.ip('addr', 'add', address, 'dev', device);
  }

  /** `destination` is a CIDR or `default`. */
  async addRoute(destination: string, via: string): Promise<void> {
    await this.ip('route', 'add', destination, 'via', via);
  }

  /** A Linux bridge, up, optionally with an address (CIDR). */
  async createBridge(name: string, address?: string): Promise<void> {
    await this.ip('link', 'add', name, 'type', 'bridge');
    if (address) await this.addAddress(name, address);
    await this.ip('link', 'set', name, 'up');
  }

  /** Pids of the processes running in this namespace. */
  async pids(): Promise<number[]> {
    const result = await execa('ip', ['netns', 'pids', this.name], { reject: false });
    return String(result.stdout).split('\n').filter(Boolean).map(Number);
  }

  /** Kill every process left in the namespace, then delete it. Safe to call twice. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    for (const pid of await this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await execa('ip', ['netns', 'del', this.name], { reject: false });
    this.unregister();
  }
}

/** A veth pair with one end in each namespace, both up. */
export async function link(a: Namespace, aName: string, b: Namespace, bName: string): Promise<void> {
  await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}

/** A veth pair from `bridge` (in `host`) to `device` in `guest`, the host end enslaved to the bridge. */
export async function attachToBridge(host: Namespace, bridge: string, hostEnd: string, guest: Namespace, device = 'eth0'): Promise<void> {
  await link(host, hostEnd, guest, device);
  await host.ip('link', 'set', hostEnd, 'master', bridge);
}
