/**
 * A fake listening producer for tests, shaped on CoreDNS's `dnstap listen` (CoreDNS
 * 1.14.4+): a server that, for every reader that connects, writes READY, waits for
 * ACCEPT, writes START, then each message as its own flushed data frame; on stop it
 * writes STOP and waits for FINISH (golang-framestream's bidirectional Encoder). With
 * `handshake: 'unidirectional'` it writes START straight away, as a simpler producer might.
 */
import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { encodeControl, encodeData, type ControlFrame } from '../../src/framestream/control.js';
import { FrameDecoder } from '../../src/framestream/decoder.js';
import type { Endpoint } from '../../src/framestream/endpoint.js';
import { ControlType, DNSTAP_CONTENT_TYPE } from '../../src/framestream/limits.js';

export interface ListeningProducer {
  /** Where it listens; a TCP port 0 is replaced by the chosen port, kept across restarts. */
  readonly endpoint: Endpoint;
  /** Control frames the readers sent back (ACCEPT, FINISH), in order. */
  readonly replies: ControlFrame[];
  /** Readers connected so far, over every restart. */
  readonly accepted: number;
  /** Readers whose stream has started and that receive send(). */
  streaming(): number;
  send(payload: Buffer): void;
  /** Bytes as they are, e.g. half a frame. */
  sendRaw(bytes: Buffer): void;
  /** A clean shutdown: STOP to each reader, wait for its FINISH, close. */
  stop(): Promise<void>;
  /** Gone at once, connections reset, nothing said. */
  crash(): Promise<void>;
  /** Listen again on the same endpoint. */
  start(): Promise<void>;
}

export async function listeningProducer(
  wanted: Endpoint,
  options: { handshake?: 'bidirectional' | 'unidirectional' } = {},
): Promise<ListeningProducer> {
  const replies: ControlFrame[] = [];
  const streams = new Set<Socket>();
  const sockets = new Set<Socket>();
  let endpoint = wanted;
  let server: Server | undefined;
  let accepted = 0;

  const serve = (socket: Socket): void => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      sockets.delete(socket);
      streams.delete(socket);
    });
    const begin = () => {
      socket.write(encodeControl(ControlType.START, [DNSTAP_CONTENT_TYPE]));
      streams.add(socket);
    };
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.kind !== 'control') continue;
        replies.push(frame.control);
        if (frame.control.type === ControlType.ACCEPT) begin();
        if (frame.control.type === ControlType.FINISH) socket.end();
      }
    });
    if (options.handshake === 'unidirectional') begin();
    else socket.write(encodeControl(ControlType.READY, [DNSTAP_CONTENT_TYPE]));
  };

  const start = async (): Promise<void> => {
    if (endpoint.transport === 'unix') await rm(endpoint.path, { force: true });
    const s = createServer(serve);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      if (endpoint.transport === 'unix') s.listen(endpoint.path, resolve);
      else s.listen(endpoint.port, endpoint.host, resolve);
    });
    if (endpoint.transport === 'tcp') endpoint = { ...endpoint, port: (s.address() as AddressInfo).port };
    server = s;
  };

  const closeServer = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await start();
  return {
    get endpoint() {
      return endpoint;
    },
    replies,
    get accepted() {
      return accepted;
    },
    streaming: () => streams.size,
    send(payload) {
      for (const socket of streams) socket.write(encodeData(payload));
    },
    sendRaw(bytes) {
      for (const socket of streams) socket.write(bytes);
    },
    async stop() {
      const closing = [...sockets].map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
      for (const socket of sockets) socket.write(encodeControl(ControlType.STOP));
      streams.clear();
      await Promise.all([closeServer(), ...closing]);
    },
    async crash() {
      for (const socket of sockets) endpoint.transport === 'tcp' ? socket.resetAndDestroy() : socket.destroy();
      streams.clear();
      await closeServer();
    },
    start,
  };
}
