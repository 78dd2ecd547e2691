/**
 * The lab's container image, made offline: busybox-static (sh, nc, nslookup…) and curl
 * with every library ldd lists for it, imported with `docker import`.
 */
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from './exec.js';
import type { Dockerd } from './dockerd.js';

export const LAB_IMAGE = 'on-his-name-lab:latest';
const BUSYBOX_APPLETS = ['sh', 'nc', 'nslookup', 'sleep', 'cat', 'echo', 'printf', 'ls', 'httpd', 'ip', 'ping', 'true', 'wget'];

export async function importLabImage(dockerd: Dockerd): Promise<string> {
  const rootfs = await mkdtemp(join(tmpdir(), 'ohn-rootfs-'));
  try {
    await copyInto(rootfs, '/bin/busybox');
    for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));
    await copyInto(rootfs, '/usr/bin/curl');
    for (const library of await sharedLibraries('/usr/bin/curl')) await copyInto(rootfs, library);
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    await mkdir(join(rootfs, 'tmp'), { recursive: true });
    const tarball = `${rootfs}.tar`;
    await run('tar', ['-C', rootfs, '-cf', tarball, '.']);
    try {
      await dockerd.docker(['import', '-c', 'ENV PATH=/usr/bin:/bin', tarball, LAB_IMAGE]);
    } finally {
      await rm(tarball, { force: true });
    }
    return LAB_IMAGE;
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}

/** Every path `ldd` resolves, the dynamic loader included. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await run('ldd', [binary]);
  return [...out.matchAll(/(\/\S+)/g)].map((m) => m[1]!).filter((p, i, all) => all.indexOf(p) === i);
}

async function copyInto(rootfs: string, path: string): Promise<void> {
  const target = join(rootfs, path);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(path, target);
}
