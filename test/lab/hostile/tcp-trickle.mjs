// One client holding the inline proxy's TCP connections, run in a container's namespace:
//
//   ip netns exec NS node tcp-trickle.mjs GATEWAY COUNT
//
// Opens COUNT connections to GATEWAY:53 and on each sends a DNS message one byte every
// 2 s: a length of 64, then the message's bytes, so that the message is never whole
// within two minutes and the proxy's idle timer, which every byte restarts, never ends
// it. Prints {"open":…,"closed":…,"failed":…} every 100 ms, with "settled":true once
// every connection is established or refused, and keeps trickling until killed.
import { connect } from 'node:net';

const [gateway, count] = process.argv.slice(2);
let open = 0;
let closed = 0;
let failed = 0;
let settled = 0;
const sockets = [];
/** The next byte of a 64-byte message behind its 2-byte length; bytes sent so far per socket. */
const MESSAGE = Buffer.concat([Buffer.from([0, 64]), Buffer.alloc(64)]);
const progress = new Map();
const trickle = (socket) => {
  const at = progress.get(socket) ?? 0;
  if (at >= MESSAGE.length || socket.destroyed) return;
  socket.write(MESSAGE.subarray(at, at + 1));
  progress.set(socket, at + 1);
};
for (let i = 0; i < Number(count); i++) {
  const socket = connect({ host: gateway, port: 53 });
  let connected = false;
  socket.on('connect', () => {
    connected = true;
    open++;
    settled++;
    trickle(socket);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (connected) {
      open--;
      closed++;
    } else {
      failed++;
      settled++;
    }
  });
  sockets.push(socket);
}
setInterval(() => {
  for (const socket of sockets) if (progress.has(socket)) trickle(socket);
}, 2_000);
setInterval(() => process.stdout.write(`${JSON.stringify({ open, closed, failed, settled: settled >= Number(count) })}\n`), 100);
