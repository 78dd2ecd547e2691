// DNS over UDP for the inline-mode benchmark, in its own process so that neither side
// shares an event loop with the proxy under test.
//
//   node dns-load.mjs serve
//     An upstream on 127.0.0.1 (port printed on stdout) answering every A query at once:
//     NAME → one address in 198.18.0.0/15 derived from the name, TTL 300.
//   node dns-load.mjs load PORT PREFIX NAMES QUERIES CONCURRENCY [OFFSET]
//     CONCURRENCY clients each ask in turn (one query in flight per client) until QUERIES
//     are answered, for PREFIX{OFFSET}.test … PREFIX{OFFSET+NAMES-1}.test round robin. Prints JSON:
//     { latenciesMs: [...], seconds, lost }.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') serve();
else if (mode === 'load') await load(...args.map((a, i) => (i === 1 ? a : Number(a))));
else throw new Error('usage: dns-load.mjs serve | load PORT PREFIX NAMES QUERIES CONCURRENCY [OFFSET]');

function serve() {
  const udp = createSocket('udp4');
  udp.on('message', (bytes, peer) => {
    const query = dnsPacket.decode(bytes);
    const question = query.questions[0];
    const reply = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: query.questions,
      answers: question?.type === 'A' ? [{ type: 'A', name: question.name, ttl: 300, data: addressOf(question.name) }] : [],
    });
    udp.send(reply, peer.port, peer.address);
  });
  udp.bind(0, '127.0.0.1', () => console.log(udp.address().port));
}

/** A stable address per name: its number in the name, spread over 198.18.0.0/15. */
function addressOf(name) {
  const n = Number(/(\d+)\./.exec(name)?.[1] ?? 0);
  return `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
}

async function load(port, prefix, names, queries, concurrency, offset = 0) {
  const latenciesMs = [];
  let next = 0;
  let lost = 0;
  const started = performance.now();
  const client = async () => {
    const socket = createSocket('udp4');
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
    let waiting;
    socket.on('message', (reply) => waiting?.(reply));
    while (next < queries) {
      const i = next++;
      const bytes = dnsPacket.encode({ id: i & 0xffff, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `${prefix}${offset + (i % names)}.test` }] });
      const sent = performance.now();
      const answered = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        waiting = () => {
          clearTimeout(timer);
          resolve(true);
        };
        socket.send(bytes, port, '127.0.0.1');
      });
      if (answered) latenciesMs.push(performance.now() - sent);
      else lost++;
    }
    socket.close();
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  console.log(JSON.stringify({ latenciesMs, seconds: (performance.now() - started) / 1000, lost }));
}
