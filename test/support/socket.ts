/** A producer connection for tests: write bytes, read what the reader answers. */
import { createConnection, type Socket } from 'node:net';

export interface TestProducer {
  socket: Socket;
  received: () => Buffer;
  closed: Promise<void>;
  write(bytes: Buffer): Promise<void>;
}

/** A Unix socket path, or a TCP address; allowHalfOpen: keep writing after the reader ends its side, as a careless producer might. */
export async function connectProducer(target: string | { host: string; port: number }, options: { allowHalfOpen?: boolean } = {}): Promise<TestProducer> {
  const allowHalfOpen = options.allowHalfOpen ?? false;
  const socket = createConnection(typeof target === 'string' ? { path: target, allowHalfOpen } : { ...target, allowHalfOpen });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => Buffer.concat(chunks),
    closed,
    write: (bytes) => new Promise<void>((resolve) => socket.write(bytes, () => resolve())),
  };
}

export async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
