/**
 * A private dockerd inside a lab namespace: its own data root, exec root, socket and
 * managed containerd under a temporary directory, so nothing touches the host's Docker.
 * Started with nsenter --net (not `ip netns exec`, which remounts /sys and hides cgroups).
 */
import { execa, type ResultPromise } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Namespace } from './netns.js';

export interface Dockerd {
  socket: string;
  /** Environment for docker clients and on-his-name: DOCKER_HOST. */
  env: { DOCKER_HOST: string };
  docker(args: readonly string[], options?: { reject?: boolean; input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;

export async function startDockerd(namespace: Namespace, dir: string, log: (line: string) => void = () => undefined): Promise<Dockerd> {
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'docker.sock');
  const config = join(dir, 'daemon.json');
  // An empty config keeps /etc/docker/daemon.json (the host's) out of the lab.
  await writeFile(config, '{}\n');
  const env = { DOCKER_HOST: `unix://${socket}` };

  const docker: Dockerd['docker'] = async (args, options = {}) => {
    const result = await execa('docker', [...args], {
      env,
      reject: false,
      ...(options.input !== undefined ? { input: options.input } : {}),
      ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}),
    });
    const out = { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
    if (options.reject !== false && out.exitCode !== 0) throw new Error(`docker ${args.join(' ')} failed: ${out.stderr}`);
    return out;
  };

  let child: ResultPromise | undefined;
  const launch = async () => {
    child = execa(
      'nsenter',
      [
        `--net=/run/netns/${namespace.name}`,
        'dockerd',
        '--config-file', config,
        '--data-root', join(dir, 'data'),
        '--exec-root', join(dir, 'exec'),
        '--pidfile', join(dir, 'docker.pid'),
        '-H', env.DOCKER_HOST,
        '--log-level', 'warn',
      ],
      { reject: false, all: true, buffer: false },
    );
    child.all?.on('data', (chunk: Buffer) => log(chunk.toString()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while ((await docker(['version', '--format', '{{.Server.Version}}'], { reject: false, timeoutMs: 5_000 })).exitCode !== 0) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error('dockerd did not come up (see its log above)');
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const halt = async () => {
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 20_000);
    await child;
    clearTimeout(timer);
  };

  await launch();
  return {
    socket,
    env,
    docker,
    async restart() {
      await halt();
      await launch();
    },
    stop: halt,
  };
}
