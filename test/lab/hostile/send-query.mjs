// One DNS query over UDP from a chosen source address and port, run in a namespace:
//
//   ip netns exec NS node send-query.mjs FROM_ADDRESS FROM_PORT TO_ADDRESS TO_PORT NAME [ID]
//
// FROM may be an address the test added to this namespace to stand for someone else's (a
// forged source: a real container does the same with CAP_NET_RAW). It sends the query once,
// prints {"sent":1} once the kernel has taken it, and exits without waiting for a reply.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const [fromAddress, fromPort, toAddress, toPort, name, id = '4242'] = process.argv.slice(2);
const query = dnsPacket.encode({ id: Number(id), type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
const socket = createSocket({ type: fromAddress.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
socket.bind(Number(fromPort), fromAddress, () => {
  socket.send(query, Number(toPort), toAddress, (err) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ sent: 1 })}\n`);
    socket.close();
  });
});
