// A tiny "internet" web server for labs, run in a namespace:
//
//   ip netns exec NS node tcp-server.mjs [--tls CERT KEY] PORT|ADDRESS:PORT ...
//
// A bare PORT listens on every IPv4 address of the namespace. Each request gets an
// HTTP/1.0 200 answer naming the address and port it reached ("hello from 198.51.100.10:80"),
// then the connection closes. With --tls, a connection that opens with a TLS handshake
// (first byte 0x16) on any port is served over TLS with that certificate, so that
// `curl https://…:443` makes a real handshake while plain HTTP keeps working on every port.
// Prints "ready" on stdout once every listener is up.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';

const TLS_HANDSHAKE = 0x16;

const args = process.argv.slice(2);
let secureContext;
if (args[0] === '--tls') {
  const [, cert, key] = args.splice(0, 3);
  secureContext = createSecureContext({ cert: readFileSync(cert), key: readFileSync(key) });
}

const listeners = args.map((arg) => {
  const match = /^(?:(.+):)?(\d+)$/.exec(arg);
  if (!match) throw new Error(`tcp-server.mjs: not PORT or ADDRESS:PORT: ${arg}`);
  return { host: match[1] ?? '0.0.0.0', port: Number(match[2]) };
});

function answer(stream, address, port) {
  stream.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello from ${address}:${port}\n`);
}

function serve(socket, port) {
  socket.on('error', () => undefined);
  const address = socket.localAddress?.replace(/^::ffff:/, '');
  socket.once('data', (first) => {
    if (!secureContext || first[0] !== TLS_HANDSHAKE) return answer(socket, address, port);
    socket.pause();
    socket.unshift(first);
    const tls = new TLSSocket(socket, { isServer: true, secureContext });
    tls.on('error', () => socket.destroy());
    tls.once('data', () => answer(tls, address, port));
  });
}

await Promise.all(
  listeners.map(
    ({ host, port }) =>
      new Promise((resolve, reject) => {
        const server = createServer((socket) => serve(socket, port));
        server.once('error', reject);
        server.listen(port, host, () => resolve(undefined));
      }),
  ),
);
process.stdout.write('ready\n');
