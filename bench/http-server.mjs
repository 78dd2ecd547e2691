// The benchmark's web server: `node http-server.mjs PORT ...`, on every address of its
// namespace. Unlike test/lab/tcp-server.mjs it reads the request head before it answers
// and closes, so a load generator never writes into a connection the server already
// closed (which ends in a reset instead of a response). One connection, one request.
import { createServer } from 'node:net';

const RESPONSE = Buffer.from('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
/** A request head longer than this is not from the benchmark's client: drop the connection. */
const MAX_HEAD = 8192;

for (const port of process.argv.slice(2).map(Number)) {
  createServer((socket) => {
    socket.on('error', () => undefined);
    let head = '';
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) socket.end(RESPONSE);
      else if (head.length > MAX_HEAD) socket.destroy();
    });
  }).listen({ port, host: '0.0.0.0', backlog: 4096 });
}
process.stdout.write('ready\n');
