/**
 * The process behind instant-dnstap-dns.ts, started inside a lab namespace as
 * `node --import tsx instant-dnstap-dns-process.ts CONFIG.json`. Prints "ready" once it
 * answers DNS and listens for dnstap readers; on SIGTERM says STOP to its readers and exits.
 */
import { readFile } from 'node:fs/promises';
import { startFakeUpstream, type Transport } from '../support/dns.js';
import { addressBytes, dnstapFrame } from '../support/dnstap.js';
import { listeningProducer } from '../support/listening-producer.js';
import type { InstantDnstapDnsConfig } from './instant-dnstap-dns.js';
import { zoneAnswers } from './zone-answers.js';

/** dnstap's SocketProtocol values. */
const PROTOCOL: Record<Transport, number> = { udp: 1, tcp: 2 };
/** A reader that never says FINISH must not keep the lab waiting. */
const STOP_GRACE_MS = 1_000;

const config = JSON.parse(await readFile(process.argv[2] ?? '', 'utf8')) as InstantDnstapDnsConfig;
const producer = await listeningProducer({ transport: 'unix', path: config.dnstapSocket });
const dns = await startFakeUpstream(zoneAnswers(config.zone, config.records), {
  host: config.listen,
  port: config.port,
  sent: (reply, peer, transport) =>
    producer.send(dnstapFrame({ queryAddress: addressBytes(peer.address), queryPort: peer.port, socketProtocol: PROTOCOL[transport], responseMessage: reply })),
});
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  const grace = new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS));
  void Promise.race([producer.stop(), grace])
    .then(() => dns.close())
    .finally(() => process.exit(0));
});
