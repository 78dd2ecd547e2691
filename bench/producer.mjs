// A dnstap producer for benchmarks, in its own process: `node producer.mjs SOCKET BLOCK_FILE FRAMES`.
// BLOCK_FILE holds data frames (length-prefixed); they are written again and again, as fast
// as the reader takes them, between a bidirectional handshake (READY, ACCEPT, START … STOP,
// FINISH). Prints JSON: frames sent and seconds from START to FINISH.
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';

const [socketPath, blockFile, framesArg] = process.argv.slice(2);
const block = readFileSync(blockFile);
const framesPerBlock = countFrames(block);
const blocks = Math.max(1, Math.round(Number(framesArg) / framesPerBlock));
const CONTENT_TYPE = Buffer.from('protobuf:dnstap.Dnstap');

function control(type, withContentType) {
  const fields = withContentType ? 8 + CONTENT_TYPE.length : 0;
  const out = Buffer.alloc(12 + fields);
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(4 + fields, 4);
  out.writeUInt32BE(type, 8);
  if (withContentType) {
    out.writeUInt32BE(1, 12);
    out.writeUInt32BE(CONTENT_TYPE.length, 16);
    CONTENT_TYPE.copy(out, 20);
  }
  return out;
}

function countFrames(bytes) {
  let n = 0;
  for (let at = 0; at < bytes.length; at += 4 + bytes.readUInt32BE(at)) n++;
  return n;
}

const socket = createConnection(socketPath);
let received = Buffer.alloc(0);
let phase = 'ready';
let started = 0n;
socket.on('connect', () => socket.write(control(4, true)));
socket.on('data', async (chunk) => {
  received = Buffer.concat([received, chunk]);
  if (phase === 'ready' && received.length >= 12) {
    received = Buffer.alloc(0);
    phase = 'sending';
    socket.write(control(2, true));
    started = process.hrtime.bigint();
    for (let i = 0; i < blocks; i++) {
      if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    socket.write(control(3, false));
    phase = 'stopping';
  } else if (phase === 'stopping' && received.length >= 12) {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(`${JSON.stringify({ frames: blocks * framesPerBlock, seconds })}\n`);
    socket.end();
    process.exit(0);
  }
});
socket.on('error', (err) => {
  process.stderr.write(`producer: ${err.message}\n`);
  process.exit(1);
});
setTimeout(() => {
  process.stderr.write('producer: no FINISH within 120 s\n');
  process.exit(2);
}, 120_000).unref();
