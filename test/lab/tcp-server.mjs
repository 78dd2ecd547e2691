// A tiny "internet" web server for labs, run in a namespace:
//
//   ip netns exec NS node tcp-server.mjs PORT|ADDRESS:PORT ...
//
// A bare PORT listens on every IPv4 address of the namespace. Each connection gets an
// HTTP/1.0 200 answer naming the address and port it reached ("hello from 198.51.100.10:80"),
// then the connection closes. Prints "ready" on stdout once every listener is up.
import { createServer } from 'node:net';

const listeners = process.argv.slice(2).map((arg) => {
  const match = /^(?:(.+):)?(\d+)$/.exec(arg);
  if (!match) throw new Error(`tcp-server.mjs: not PORT or ADDRESS:PORT: ${arg}`);
  return { host: match[1] ?? '0.0.0.0', port: Number(match[2]) };
});

await Promise.all(
  listeners.map(
    ({ host, port }) =>
      new Promise((resolve, reject) => {
        const server = createServer((socket) => {
          socket.on('error', () => undefined);
          const address = socket.localAddress?.replace(/^::ffff:/, '');
          socket.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello from ${address}:${port}\n`);
        });
        server.once('error', reject);
        server.listen(port, host, () => resolve(undefined));
      }),
  ),
);
process.stdout.write('ready\n');
