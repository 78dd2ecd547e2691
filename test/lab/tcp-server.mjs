// A tiny "internet" web server for labs: `node tcp-server.mjs PORT ...`, on every address
// of its namespace. Each connection gets an HTTP/1.0 answer naming the address and port
// it reached.
import { createServer } from 'node:net';

for (const port of process.argv.slice(2).map(Number)) {
  createServer((socket) => {
    socket.on('error', () => undefined);
    const address = socket.localAddress?.replace(/^::ffff:/, '');
    socket.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello from ${address}:${port}\n`);
  }).listen(port, '0.0.0.0');
}
process.stdout.write('ready\n');
