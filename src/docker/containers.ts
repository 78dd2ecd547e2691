/**
 * The containers on a Docker network, with what a per-container policy keys on: the
 * container's labels and name, and its addresses on that network (the source addresses
 * its packets carry into DOCKER-USER).
 *
 *   GET /containers/json?filters={"network":[NAME]} ─ContainerSummary[]─▶ listedContainer ─▶ AttachedContainer[]
 *   GET /containers/{id}/json (one container, after a connect event) ─▶ inspectedContainer ─▶ AttachedContainer
 *
 * The mapping is pure; the client only fetches.
 */

/** One container's endpoint on one network, as both listings carry it. */
export interface EndpointSettings {
  NetworkID?: string;
  /** '' when the container has no IPv4 address there. */
  IPAddress?: string;
  /** '' when the container has no IPv6 address there (the network was not created with --ipv6). */
  GlobalIPv6Address?: string;
}

/** What we read of one entry of `GET /containers/json`. */
export interface ContainerSummary {
  Id: string;
  /** '/name', and '/other/alias' for each legacy link to it. */
  Names?: string[];
  Labels?: Record<string, string> | null;
  State?: string;
  NetworkSettings?: { Networks?: Record<string, EndpointSettings> | null } | null;
}

/** What we read of `GET /containers/{id}/json` (`docker container inspect`). */
export interface ContainerInspect {
  Id: string;
  /** '/name'. */
  Name?: string;
  Config?: { Labels?: Record<string, string> | null } | null;
  State?: { Running?: boolean } | null;
  NetworkSettings?: { Networks?: Record<string, EndpointSettings> | null } | null;
}

/** The slice of Docker's container API we use, so tests can pass a fake. */
export interface DockerContainers {
  /** Running containers only, as `docker ps`: a stopped container has no address to filter. */
  listContainers(options: { filters: Record<string, string[]> }): Promise<ContainerSummary[]>;
  inspectContainer(id: string): Promise<ContainerInspect>;
}

export interface AttachedContainer {
  id: string;
  /** Without Docker's leading '/'. */
  name: string;
  labels: Record<string, string>;
  ipv4?: string;
  ipv6?: string;
}

/** The network as Docker names it: the key of NetworkSettings.Networks is its name, NetworkID its id. */
export interface NetworkRef {
  name: string;
  id?: string;
}

/** The running containers attached to `network`, with their addresses on it. */
export async function containersOnNetwork(docker: DockerContainers, network: NetworkRef): Promise<AttachedContainer[]> {
  const summaries = await docker.listContainers({ filters: { network: [network.name] } });
  return summaries.flatMap((summary) => {
    const attached = listedContainer(summary, network);
    return attached ? [attached] : [];
  });
}

/**
 * A listed container as seen on `network`; undefined when it is not attached to it (it
 * left between the question and the answer, or the filter matched a network whose id
 * starts with that name).
 */
export function listedContainer(summary: ContainerSummary, network: NetworkRef): AttachedContainer | undefined {
  // Of `Names`, the container's own: not a link alias (`/other/alias`).
  const names = summary.Names ?? [];
  const name = names.find((n) => n.lastIndexOf('/') === 0) ?? names[0] ?? '';
  return attached(summary.Id, name, summary.Labels, summary.NetworkSettings?.Networks, network);
}

/** An inspected container as seen on `network`; undefined when it is not attached to it. */
export function inspectedContainer(container: ContainerInspect, network: NetworkRef): AttachedContainer | undefined {
  return attached(container.Id, container.Name ?? '', container.Config?.Labels, container.NetworkSettings?.Networks, network);
}

function attached(
  id: string,
  name: string,
  labels: Record<string, string> | null | undefined,
  networks: Record<string, EndpointSettings> | null | undefined,
  network: NetworkRef,
): AttachedContainer | undefined {
  const endpoint = endpointOn(networks ?? {}, network);
  if (!endpoint) return undefined;
  return {
    id,
    name: name.replace(/^\//, ''),
    labels: { ...labels },
    ...(endpoint.IPAddress ? { ipv4: endpoint.IPAddress } : {}),
    ...(endpoint.GlobalIPv6Address ? { ipv6: endpoint.GlobalIPv6Address } : {}),
  };
}

/** By name (the key), checked against the id when both are known; by id when the network was renamed or re-keyed. */
function endpointOn(networks: Record<string, EndpointSettings>, network: NetworkRef): EndpointSettings | undefined {
  const byName = networks[network.name];
  if (byName && (!network.id || !byName.NetworkID || byName.NetworkID === network.id)) return byName;
  return network.id ? Object.values(networks).find((e) => e.NetworkID === network.id) : undefined;
}
