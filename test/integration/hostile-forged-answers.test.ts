/**
 * A hostile container forges the upstream resolver's answers to the inline proxy (issue
 * item 1), against the real CLI in the firewall lab. The container asks for an allowed
 * name and, at once, floods replies that claim to come from the resolver (source address
 * and port 53) to the host's addresses and every ephemeral port, with the client's own
 * query ID and question and an answer pointing at 203.0.113.66. Had one been taken, the
 * proxy would open 203.0.113.66 and hand it to the container.
 *
 * To make the attack as easy as it can be, the host has reverse-path filtering off (the
 * kernel's default), its ephemeral ports narrowed to ten, and the resolver takes a second
 * to answer (a name nobody has cached). Two places for the resolver:
 * - on the "internet" (198.51.100.53): the forged source is outside the network's subnets;
 * - in a container of the same network (192.0.2.11, a resolver container): the forged
 *   source is inside them, so only the query's random ID and letter case stand in the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../lab/backends.js';
import { DEFAULT_RECORDS, GATEWAY, UPLINK } from '../lab/firewall-lab.js';
import { startFakeDns, type FakeDns } from '../lab/fake-dns.js';
import { SCRIPTS, forgeAddress, looseSourceRouting, narrowEphemeralPorts, probe } from '../lab/hostile.js';
import { createHostileLab, type HostileLab } from '../lab/hostile-lab.js';
import { startInNamespace } from '../lab/ns-process.js';
import type { ZoneRecord } from '../lab/unbound.js';
import { firewallReport, printOnFailure } from '../support/failure.js';
import { canUseNamespaces, skipNote } from '../support/root.js';

const POISON = '203.0.113.66';
const PORTS = [40_000, 40_009] as const;
const ROUNDS = 3;
const RESOLVER_DELAY_MS = 1_000;
const names = Array.from({ length: ROUNDS }, (_, i) => `r${i}.forge.test`);
const RECORDS: ZoneRecord[] = [...DEFAULT_RECORDS, ...names.map((name, i) => ({ name: `${name}.`, type: 'A' as const, value: `198.51.100.${11 + i}` }))];
const PATTERNS = ['*.forge.test.', 'allowed.test.'];

interface Round {
  sent: number;
  answer: string[] | null;
}

describe.skipIf(!canUseNamespaces()).each(BACKENDS)(`a container forging the inline resolver's answers, --backend $name${skipNote()}`, (backend) => {
  let hostile: HostileLab;
  const dns: FakeDns[] = [];

  /** One attack per name from container 0, forging `source`:53 towards `targets`. */
  const attack = async (source: string, targets: readonly string[]): Promise<Round[]> => {
    const rounds: Round[] = [];
    for (const [i, name] of names.entries()) {
      const config = { gateway: GATEWAY, client: hostile.lab.containerAddresses[0], name, id: 7000 + i, forgedSource: source, targets, ports: PORTS, answer: POISON, floodMs: 5_000, roundsPerMs: 2 };
      const forger = startInNamespace(hostile.lab.containers[0]!, [process.execPath, SCRIPTS.forgeAnswers, JSON.stringify(config)]);
      const result = (await forger.waitForLine((line) => typeof line.sent === 'number', 15_000, 'the forger\'s result')) as unknown as Round;
      await forger.stop();
      rounds.push(result);
    }
    const sent = rounds.reduce((sum, r) => sum + r.sent, 0);
    const taken = rounds.filter((r) => r.answer?.includes(POISON)).length;
    console.info(`--backend ${backend.name}, forged source ${source}: ${sent} forged replies sent, ${taken} of ${ROUNDS} queries answered with the forgery`);
    return rounds;
  };

  /** Nothing opened 203.0.113.66, and the container cannot reach it. */
  const poisonStaysClosed = async () => {
    expect([...(await backend.holds(hostile.lab.host, 4)).addresses]).not.toContain(POISON);
    expect(await probe(hostile.lab.containers[0]!, { protocol: 'tcp', address: POISON, port: 80 }, () => backend.drops.egress(hostile.lab.host, 4))).toBe('dropped');
  };

  beforeAll(async () => {
    const unavailable = await backend.unavailable();
    if (unavailable) throw new Error(unavailable);
    hostile = await createHostileLab({ records: RECORDS, hostFirewall: backend.hostFirewall });
    const { lab } = hostile;
    await lab.internet.ip('addr', 'add', '198.51.100.53/24', 'dev', 'eth0');
    await lab.internet.ip('addr', 'add', `${POISON}/24`, 'dev', 'eth0');
    await looseSourceRouting(lab.host, lab.bridge);
    await narrowEphemeralPorts(lab.host, PORTS[0], PORTS[1]);
  }, 60_000);

  printOnFailure(async () => firewallReport((await backend.listing(hostile.lab.host)).split('\n'), hostile.daemon?.output(), backend.name));

  afterAll(async () => {
    for (const server of dns) await server.stop();
    await hostile?.close();
  });

  it('a resolver on the internet: no forged answer opens anything, however many are sent', async () => {
    const { lab } = hostile;
    const resolver = await startFakeDns(lab.internet, { listen: '198.51.100.53', zone: 'test.', records: RECORDS, delay: { match: 'forge', ms: RESOLVER_DELAY_MS } });
    dns.push(resolver);
    await forgeAddress(lab.containers[0]!, '198.51.100.53');
    await hostile.start([...backend.args, '--dns-listen', `${GATEWAY}:53`, '--dns-upstream', '198.51.100.53:53', ...PATTERNS]);

    const rounds = await attack('198.51.100.53', [GATEWAY, UPLINK]);
    // The attack was real: the forger kept sending until the resolver's own answer came back.
    expect(rounds.every((r) => r.sent > 0)).toBe(true);
    expect(rounds.map((r) => r.answer)).toEqual(names.map((_, i) => [`198.51.100.${11 + i}`]));
    await poisonStaysClosed();
  }, 60_000);

  it('a resolver container on the same network: the forged source passes the source check, the query ID and letter case do not', async () => {
    const { lab } = hostile;
    await hostile.stopDaemon();
    const resolver = await startFakeDns(lab.containers[1]!, { listen: lab.containerAddresses[1]!, zone: 'test.', records: RECORDS, delay: { match: 'forge', ms: RESOLVER_DELAY_MS } });
    dns.push(resolver);
    await forgeAddress(lab.containers[0]!, lab.containerAddresses[1]!, 'lo');
    await hostile.start([...backend.args, '--dns-listen', `${GATEWAY}:53`, '--dns-upstream', `${lab.containerAddresses[1]}:53`, ...PATTERNS]);

    const rounds = await attack(lab.containerAddresses[1]!, [GATEWAY]);
    expect(rounds.every((r) => r.sent > 0)).toBe(true);
    expect(rounds.map((r) => r.answer)).toEqual(names.map((_, i) => [`198.51.100.${11 + i}`]));
    await poisonStaysClosed();
  }, 60_000);
});
