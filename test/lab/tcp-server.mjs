// A tiny "internet" web server for labs: `node tcp-server.mjs ADDRESS:PORT ...`.
// Every connection gets an HTTP/1.0 answer naming the address and port it reached.
import { createServer } from 'node:net';

for (const spec of process.argv.slice(2)) {
  const at = spec.lastIndexOf(':');
  const host = spec.slice(0, at);
  const port = Number(spec.slice(at + 1));
  createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello from ${host}:${port}\n`);
  }).listen(port, host);
}
process.stdout.write('ready\n');
