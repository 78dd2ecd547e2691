// A UDP service for labs, run in a namespace:
//
//   ip netns exec NS node udp-service.mjs [--echo] ADDRESS:PORT ...
//
// Prints "ready" once every socket is bound, then one JSON line per datagram received,
// {"at":"ADDRESS:PORT","from":ADDRESS,"port":N,"bytes":N}. With --echo it sends each
// datagram back, as the echo service (port 7) does.
import { createSocket } from 'node:dgram';

const args = process.argv.slice(2);
const echo = args[0] === '--echo';
if (echo) args.shift();

await Promise.all(
  args.map((arg) => {
    const match = /^(.+):(\d+)$/.exec(arg);
    if (!match) throw new Error(`udp-service.mjs: not ADDRESS:PORT: ${arg}`);
    const [, address, port] = match;
    const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    socket.on('message', (bytes, peer) => {
      process.stdout.write(`${JSON.stringify({ at: arg, from: peer.address, port: peer.port, bytes: bytes.length })}\n`);
      if (echo) socket.send(bytes, peer.port, peer.address);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(Number(port), address, () => resolve());
    });
  }),
);
process.stdout.write('ready\n');
