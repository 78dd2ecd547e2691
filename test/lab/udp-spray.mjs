// A flood of distinct destinations, run in a namespace:
//
//   ip netns exec NS node udp-spray.mjs PREFIX FIRST-LAST PORT-PORT [ROUNDS]
//
// Sends one datagram to every PREFIX.N:PORT (N in FIRST..LAST, PORT in the port range),
// ROUNDS times over (default 1), as fast as the socket takes them, then prints
// {"sent":N,"ms":N} and exits. Each destination is a new (client, destination, port) for
// the blocked view. Bounded: it sends exactly that many and stops.
import { createSocket } from 'node:dgram';

const [prefix, hosts, ports, rounds = '1'] = process.argv.slice(2);
const range = (text) => {
  const match = /^(\d+)-(\d+)$/.exec(text ?? '');
  if (!match) throw new Error(`udp-spray.mjs: not FIRST-LAST: ${text}`);
  return [Number(match[1]), Number(match[2])];
};
const [firstHost, lastHost] = range(hosts);
const [firstPort, lastPort] = range(ports);
const socket = createSocket('udp4');
const payload = Buffer.from('spray');
const started = Date.now();
let sent = 0;
let failed = 0;
/** Datagrams in flight at most: the socket's callbacks keep the rest waiting, not the heap. */
const WINDOW = 256;
let inFlight = 0;
const targets = function* () {
  for (let round = 0; round < Number(rounds); round++)
    for (let port = firstPort; port <= lastPort; port++) for (let host = firstHost; host <= lastHost; host++) yield [`${prefix}.${host}`, port];
};
const queue = targets();
await new Promise((resolve) => {
  const pump = () => {
    for (;;) {
      if (inFlight >= WINDOW) return;
      const next = queue.next();
      if (next.done) {
        if (inFlight === 0) resolve();
        return;
      }
      inFlight++;
      socket.send(payload, next.value[1], next.value[0], (err) => {
        inFlight--;
        if (err) failed++;
        else sent++;
        pump();
      });
    }
  };
  pump();
});
socket.close();
process.stdout.write(`${JSON.stringify({ sent, failed, ms: Date.now() - started })}\n`);
