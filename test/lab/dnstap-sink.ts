/**
 * A minimal Frame Streams consumer on a Unix socket, for checking a lab's producer side
 * without the daemon under test: it answers READY with ACCEPT (content type
 * protobuf:dnstap.Dnstap) and STOP with FINISH, and keeps every data frame with the time
 * it arrived. Deliberately independent of src/.
 */
import { chown, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';

export const DNSTAP_CONTENT_TYPE = 'protobuf:dnstap.Dnstap';
export const ControlType = { ACCEPT: 1, START: 2, STOP: 3, READY: 4, FINISH: 5 } as const;

export interface SinkFrame {
  connection: number;
  receivedAt: number;
  payload: Buffer;
}

export interface DnstapSink {
  path: string;
  frames: SinkFrame[];
  /** Control frame types in arrival order, per connection: `1:READY`, `1:START`, … */
  controls: string[];
  connections(): number;
  /** Resolves once a data frame satisfies `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (frame: SinkFrame) => boolean, timeoutMs?: number): Promise<SinkFrame>;
  close(): Promise<void>;
}

export function controlFrame(type: number, contentTypes: readonly string[] = []): Buffer {
  const fields = contentTypes.map((ct) => {
    const bytes = Buffer.from(ct);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(1, 0); // CONTENT_TYPE
    head.writeUInt32BE(bytes.length, 4);
    return Buffer.concat([head, bytes]);
  });
  const head = Buffer.alloc(12);
  head.writeUInt32BE(0, 0);
  head.writeUInt32BE(4 + fields.reduce((n, f) => n + f.length, 0), 4);
  head.writeUInt32BE(type, 8);
  return Buffer.concat([head, ...fields]);
}

/** Listen on `path` (replacing a stale socket), chowned to `uid` when given. */
export async function startDnstapSink(path: string, options: { uid?: number } = {}): Promise<DnstapSink> {
  await rm(path, { force: true });
  const frames: SinkFrame[] = [];
  const controls: string[] = [];
  const sockets = new Set<Socket>();
  let count = 0;
  const names = Object.fromEntries(Object.entries(ControlType).map(([k, v]) => [v, k]));

  const server: Server = createServer((socket) => {
    const connection = ++count;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (pending.length < 4) return;
        const length = pending.readUInt32BE(0);
        if (length > 0) {
          if (pending.length < 4 + length) return;
          frames.push({ connection, receivedAt: Date.now(), payload: Buffer.from(pending.subarray(4, 4 + length)) });
          pending = pending.subarray(4 + length);
          continue;
        }
        if (pending.length < 8) return;
        const controlLength = pending.readUInt32BE(4);
        if (pending.length < 8 + controlLength) return;
        const type = pending.readUInt32BE(8);
        pending = pending.subarray(8 + controlLength);
        controls.push(`${connection}:${names[type] ?? type}`);
        if (type === ControlType.READY) socket.write(controlFrame(ControlType.ACCEPT, [DNSTAP_CONTENT_TYPE]));
        if (type === ControlType.STOP) socket.end(controlFrame(ControlType.FINISH));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  if (options.uid !== undefined) await chown(path, options.uid, -1);

  return {
    path,
    frames,
    controls,
    connections: () => count,
    async waitFor(predicate, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = frames.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching dnstap frame within ${timeoutMs} ms (${frames.length} frames, controls ${controls.join(' ')})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(path, { force: true });
    },
  };
}

/** `name` in DNS wire format (`\x07allowed\x04test\x00`), to spot a name in a raw payload. */
export function wireName(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.');
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}
