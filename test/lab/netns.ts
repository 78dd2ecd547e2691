/**
 * Network namespaces for labs: unique short names, veth links, and removal that also
 * kills whatever still runs inside. Nothing here touches the root namespace's firewall.
 */
import { execa } from 'execa';
import { inNamespace, run } from './exec.js';

let counter = 0;

/** Short enough that derived interface names stay within Linux's 15 characters. */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid % 10000}${String.fromCharCode(97 + (counter++ % 26))}`;
}

export class Namespace {
  private constructor(readonly name: string) {}

  static async create(prefix: string): Promise<Namespace> {
    const ns = new Namespace(uniqueName(prefix));
    await run('ip', ['netns', 'add', ns.name]);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(command: string, args: readonly string[]): Promise<string> {
    return inNamespace(this.name, command, args);
  }

  ip(...args: string[]): Promise<string> {
    return this.exec('ip', args);
  }

  async enableForwarding(): Promise<void> {
    await this.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  }

  /** Kill every process left in the namespace, then delete it. Safe to call twice. */
  async remove(): Promise<void> {
    const pids = await execa('ip', ['netns', 'pids', this.name], { reject: false });
    for (const pid of String(pids.stdout).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await execa('ip', ['netns', 'del', this.name], { reject: false });
  }
}

/** A veth pair with one end in each namespace, both up. */
export async function link(a: Namespace, aName: string, b: Namespace, bName: string): Promise<void> {
  await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}
