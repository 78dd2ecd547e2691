// A long-lived TCP flow for labs: an echo server, and one connection that keeps talking.
//
//   ip netns exec NS node tcp-flow.mjs serve ADDRESS:PORT   echo server; prints "ready" once listening
//   ip netns exec NS node tcp-flow.mjs hold ADDRESS PORT    one connection; sends "ping\n" every 100 ms
//
// `hold` prints {"connected":true} once established, then {"echoed":N} (bytes echoed back
// so far) after each echo, and {"closed":true,"echoed":N} if the connection ends; it never
// reconnects, so an echo after an event proves that the same flow outlived it.
import { connect, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

if (mode === 'serve') {
  const match = /^(.+):(\d+)$/.exec(args[0] ?? '');
  if (!match) throw new Error(`tcp-flow.mjs serve: not ADDRESS:PORT: ${args[0]}`);
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  server.listen(Number(match[2]), match[1], () => process.stdout.write('ready\n'));
} else if (mode === 'hold') {
  const [address, port] = args;
  let echoed = 0;
  let timer;
  const socket = connect({ host: address, port: Number(port) });
  socket.on('connect', () => {
    print({ connected: true });
    timer = setInterval(() => socket.write('ping\n'), 100);
  });
  socket.on('data', (chunk) => {
    echoed += chunk.length;
    print({ echoed });
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    clearInterval(timer);
    print({ closed: true, echoed });
  });
} else {
  throw new Error(`tcp-flow.mjs: serve or hold, not ${mode}`);
}
