// One client flooding the inline proxy with UDP queries, run in a container's namespace:
//
//   ip netns exec NS node dns-flood.mjs GATEWAY COUNT PER_MS PREFIX
//
// Sends COUNT queries for PREFIX<n>.test, PER_MS a millisecond (paced, so the kernel's
// receive buffer never drops any), from one socket, and counts what comes back. Prints
// {"sent":…,"replies":…,"servfail":…} every 100 ms and once more with "done":true when
// everything is sent; then keeps counting until killed.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const [gateway, count, perMs, prefix] = process.argv.slice(2);
const socket = createSocket('udp4');
let sent = 0;
let replies = 0;
let servfail = 0;
socket.on('message', (bytes) => {
  replies++;
  if ((bytes[3] & 0x0f) === 2) servfail++;
});
const report = (done) => process.stdout.write(`${JSON.stringify({ sent, replies, servfail, ...(done ? { done } : {}) })}\n`);
setInterval(() => report(sent >= Number(count)), 100);
const started = Date.now();
while (sent < Number(count)) {
  const due = Math.min(Number(count), Math.ceil((Date.now() - started + 1) * Number(perMs)));
  for (; sent < due; sent++) {
    const query = dnsPacket.encode({ id: sent & 0xffff, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `${prefix}${sent}.test`, type: 'A', class: 'IN' }] });
    socket.send(query, 53, gateway);
  }
  await new Promise((resolve) => setTimeout(resolve, 1));
}
report(true);
