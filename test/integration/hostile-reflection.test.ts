/**
 * A hostile container uses the inline proxy as a reflector (issue item 2): it sends DNS
 * queries to the gateway with someone else's source address, so that the proxy's answer
 * lands there. Three victims:
 * - a host on the internet (198.51.100.11, any port): the host would send its answers out;
 * - an echo service on the internet (198.51.100.12, UDP 7): answers would bounce back;
 * - an echo service in the other container (192.0.2.11, UDP 7), a source inside the
 *   network's own subnet that the source check lets through: only the proxy can refuse it.
 * No fixed wait decides anything: after each forged query the container asks a query of
 * its own, and once the upstream has logged that one, it would have logged the forged
 * one before it (one socket, queries forwarded in the order they came). The victim's
 * service must have seen nothing from the host, and the upstream never the forged query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY, UPLINK } from '../lab/firewall-lab.js';
import { startFakeDns, type FakeDns } from '../lab/fake-dns.js';
import { SCRIPTS, forgeAddress, looseSourceRouting } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { startInNamespace, startReady, type NsProcess } from '../lab/ns-process.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const UPSTREAM = { host: '127.0.0.1', port: 5300 };

describe.skipIf(!canUseNamespaces()).each(BACKENDS)(`a container reflecting DNS answers through the inline proxy, --backend $name${skipNote()}`, (backend) => {
  let hostile: HostileLab;
  let upstream: FakeDns;
  let internetServices: NsProcess;
  let neighbourEcho: NsProcess;
  let round = 0;

  /** Sends a query from `source`:`port` (forged), then a query of the container's own, and waits until the upstream has that one. */
  const reflect = async (source: string, port: number) => {
    const { lab } = hostile;
    const forged = `reflect${round}.test`;
    const own = `barrier${round++}.test`;
    const sender = startInNamespace(lab.containers[0]!, [process.execPath, SCRIPTS.sendQuery, source, String(port), GATEWAY, '53', forged]);
    await sender.waitForLine((line) => line.sent === 1, 5_000, 'the forged query sent');
    await sender.stop();
    const status = await lab.containers[0]!.exec('sh', ['-c', `dig +time=10 +tries=1 @${GATEWAY} ${own} | grep -o 'status: [A-Z]*' || true`]);
    expect(status.trim()).toBe('status: NXDOMAIN');
    await upstream.waitForQuery((query) => query.name === own, 5_000);
    return forged;
  };
  /** What `service` received from the host (the gateway or the uplink address). */
  const fromHost = (service: NsProcess) => service.lines.filter((line) => line.from === GATEWAY || line.from === UPLINK);

  beforeAll(async () => {
    const unavailable = await backend.unavailable();
    if (unavailable) throw new Error(unavailable);
    hostile = await createHostileLab({ hostFirewall: backend.hostFirewall });
    const { lab } = hostile;
    await looseSourceRouting(lab.host, lab.bridge);
    upstream = hostile.track(await startFakeDns(lab.host, { listen: UPSTREAM.host, port: UPSTREAM.port, zone: 'test.', records: DEFAULT_RECORDS }));
    internetServices = hostile.track(await startReady(lab.internet, SCRIPTS.udpService, ['--echo', '198.51.100.11:40000', '198.51.100.12:7']));
    neighbourEcho = hostile.track(await startReady(lab.containers[1]!, SCRIPTS.udpService, ['--echo', `${lab.containerAddresses[1]}:7`]));
    for (const address of ['198.51.100.11', '198.51.100.12']) await forgeAddress(lab.containers[0]!, address);
    await forgeAddress(lab.containers[0]!, lab.containerAddresses[1]!, 'lo');
    await hostile.start([...backend.args, '--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${UPSTREAM.host}:${UPSTREAM.port}`, 'allowed.test.']);
  }, 60_000);

  printOnFailure(async () => `${firewallReport((await backend.listing(hostile.lab.host)).split('\n'), hostile.daemon?.output(), backend.name)}\nupstream:\n${upstream?.output()}`);

  afterAll(async () => {
    await hostile?.close();
  });

  it('a query forged from an internet host is never answered to it', async () => {
    const forged = await reflect('198.51.100.11', 40_000);
    expect(upstream.queries.map((q) => q.name)).not.toContain(forged);
    expect(fromHost(internetServices)).toEqual([]);
  });

  it("a query forged from an internet echo service's port 7 is never answered to it", async () => {
    const forged = await reflect('198.51.100.12', 7);
    expect(upstream.queries.map((q) => q.name)).not.toContain(forged);
    expect(fromHost(internetServices)).toEqual([]);
  });

  it("a query forged from the other container's echo service (inside the subnet, port 7) is never answered to it", async () => {
    const forged = await reflect(hostile.lab.containerAddresses[1]!, 7);
    expect(upstream.queries.map((q) => q.name)).not.toContain(forged);
    expect(fromHost(neighbourEcho)).toEqual([]);
  });

  it('the container still gets answers to its own queries', async () => {
    expect(await hostile.lab.resolve('allowed.test')).toEqual(['198.51.100.10']);
  });
});
