// Knocks on a closed address while the firewall is damaged, run in a container's namespace:
//
//   ip netns exec NS node knock.mjs ADDRESS PORT EVERY_MS HOLD_MS
//
// Starts a TCP connection to ADDRESS:PORT every EVERY_MS, each given up after 200 ms, and
// prints "ready" once started. Each connection that gets through prints
// {"through":N,"atMs":MS since start} and is held, silent, for HOLD_MS; then it sends an
// HTTP request over it and prints {"answered":N,…} when the answer comes back (the
// connection outlived whatever happened meanwhile) or {"lost":N,…} when it did not within
// 2 s. Runs until killed.
import { connect } from 'node:net';

const [address, port, every, hold] = process.argv.slice(2);
const started = performance.now();
const say = (line) => process.stdout.write(`${JSON.stringify({ ...line, atMs: Math.round(performance.now() - started) })}\n`);
let through = 0;
setInterval(() => {
  const socket = connect({ host: address, port: Number(port) });
  const giveUp = setTimeout(() => socket.destroy(), 200);
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    clearTimeout(giveUp);
    const n = ++through;
    say({ through: n });
    setTimeout(() => {
      const lost = setTimeout(() => (say({ lost: n }), socket.destroy()), 2_000);
      socket.once('data', () => (clearTimeout(lost), say({ answered: n }), socket.destroy()));
      socket.write('GET / HTTP/1.0\r\n\r\n');
    }, Number(hold));
  });
}, Number(every));
process.stdout.write('ready\n');
