/**
 * The kernel side of each family's firewall, built in one place: which backend
 * (firewall/choose.ts, from what the host looks like), and its runners and layout.
 *
 *   iptables  per-address rules in DOCKER-USER (iptables, and ip6tables for IPv6)
 *   ipset     the family's set behind one rule in DOCKER-USER
 *   nftables  one table of our own for both families (firewall/nft/)
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { DockerSystem } from '../docker/info.js';
import { firewallBackendDriver } from '../docker/info.js';
import { chooseBackend, type BackendName } from '../firewall/choose.js';
import type { KernelOptions } from '../firewall/firewall.js';
import { IpsetBackend } from '../firewall/ipset-backend.js';
import { DEFAULT_MAX_ELEMENTS } from '../firewall/ipset.js';
import type { IpsetRunner } from '../firewall/ipset-runner.js';
import type { IptablesRunner } from '../firewall/iptables.js';
import { NftablesBackend } from '../firewall/nft/backend.js';
import type { NftRunner } from '../firewall/nft/runner.js';
import type { NftLayout } from '../firewall/nft/render.js';
import { NftTable } from '../firewall/nft/table.js';
import { ConfigError } from '../util/errors.js';
import type { Closers } from './closers.js';
import { layoutFor, type Family, type FilteredBridge } from './filtered-bridge.js';

export interface KernelDeps {
  runner: IptablesRunner;
  runner6?: IptablesRunner | undefined;
  ipset?: (() => IpsetRunner) | undefined;
  nft?: (() => NftRunner) | undefined;
  docker?: Partial<DockerSystem> | undefined;
  log: Logger;
}

export interface Kernels {
  backend: BackendName;
  /** Why this backend, as logged at start. */
  reason: string;
  4: KernelOptions;
  /** Absent when no IPv6 filtering can be built (iptables without ip6tables). */
  6?: KernelOptions;
  /** True when the backend filters IPv6 whatever the host has (one nftables table for both families). */
  ipv6Always: boolean;
}

export async function kernelsFor(config: Config, view: FilteredBridge, deps: KernelDeps, closers: Closers): Promise<Kernels> {
  const { backend, reason } = chooseBackend(config.backend, config.backend === 'auto' ? await hostFacts(view, deps) : {});
  closers.add('iptables', () => {
    deps.runner.close?.();
    deps.runner6?.close?.();
  });
  if (backend === 'nftables') {
    if (!deps.nft) throw new ConfigError('the nftables backend needs the nft command: apt-get install nftables');
    const runner = deps.nft();
    closers.add('nft', () => runner.close());
    const table = new NftTable(runner, nftLayout(view, config));
    return {
      backend,
      reason,
      4: { backend: new NftablesBackend({ table, family: 4 }) },
      6: { backend: new NftablesBackend({ table, family: 6 }) },
      ipv6Always: true,
    };
  }
  const layout = (family: Family) => layoutFor(view, family, config.ports, config.hostPorts);
  if (backend === 'ipset') {
    if (!deps.ipset) throw new ConfigError('--backend ipset needs the ipset command: apt-get install ipset');
    const ipset = deps.ipset();
    closers.add('ipset', () => ipset.close());
    const maxElements = Math.max(config.maxIps, DEFAULT_MAX_ELEMENTS);
    const setOf = (family: Family, iptables: IptablesRunner): KernelOptions => ({
      backend: new IpsetBackend({ iptables, ipset, layout: layout(family), maxElements, log: deps.log }),
    });
    return { backend, reason, 4: setOf(4, deps.runner), ...(deps.runner6 ? { 6: setOf(6, deps.runner6) } : {}), ipv6Always: false };
  }
  return {
    backend,
    reason,
    4: { runner: deps.runner, layout: layout(4) },
    ...(deps.runner6 ? { 6: { runner: deps.runner6, layout: layout(6) } } : {}),
    ipv6Always: false,
  };
}

/** The table's layout: both families' subnets and DNS targets, the ports and the host ports. */
export function nftLayout(view: FilteredBridge, config: Pick<Config, 'ports' | 'hostPorts'>): NftLayout {
  return {
    bridge: view.bridge,
    ports: config.ports,
    hostPorts: config.hostPorts,
    4: view[4],
    6: view[6],
  };
}

/** What `auto` looks at; anything that cannot be read counts as absent. */
async function hostFacts(view: FilteredBridge, deps: KernelDeps) {
  const [iptables, ip6tables, info] = await Promise.all([
    deps.runner.list().catch(() => undefined),
    deps.runner6?.list().catch(() => undefined),
    deps.docker?.info?.().catch(() => undefined),
  ]);
  return { iptables, ip6tables, ipv6Because: view.ipv6Because, dockerFirewall: info ? firewallBackendDriver(info) : undefined };
}
