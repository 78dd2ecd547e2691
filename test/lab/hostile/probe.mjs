// Can this namespace reach ADDRESS:PORT? Run in a namespace:
//
//   ip netns exec NS node probe.mjs tcp|udp ADDRESS PORT [SOURCE]
//
// Exits 0 as soon as it is reached (tcp: the connection is established; udp: an echo
// service answered the datagram, sent again every 200 ms), 1 after 10 s without. SOURCE
// binds the sending socket to that address (a forged one the test added to an interface).
// The caller usually decides sooner, from the kernel's drop counters, and kills it.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

const [protocol, address, port, source] = process.argv.slice(2);
setTimeout(() => process.exit(1), 10_000);
if (protocol === 'tcp') {
  const socket = connect({ host: address, port: Number(port), ...(source ? { localAddress: source } : {}) });
  socket.on('connect', () => process.exit(0));
  socket.on('error', () => process.exit(2));
} else if (protocol === 'udp') {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', () => process.exit(0));
  socket.on('error', () => process.exit(2));
  socket.bind(0, source, () => {
    const send = () => socket.send(Buffer.from('probe'), Number(port), address);
    send();
    setInterval(send, 200);
  });
} else {
  throw new Error(`probe.mjs: tcp or udp, not ${protocol}`);
}
