/** A scriptable DNS server (an upstream, on loopback unless told otherwise) and plain clients, over real sockets. */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import dnsPacket from 'dns-packet';
import { TcpMessages, withLength } from '../../src/dns-proxy/tcp-framing.js';

export type Transport = 'udp' | 'tcp';
/** A packet to send back, raw bytes, or 'silent' to never answer; or a promise of one, to answer later. */
type Reply = dnsPacket.Packet | Buffer | 'silent';
export type Script = (query: dnsPacket.Packet, transport: Transport) => Reply | Promise<Reply>;

export interface Peer {
  address: string;
  port: number;
}

export interface FakeUpstreamOptions {
  /** Where to answer, UDP and TCP on the same port; default 127.0.0.1 and a free port. */
  host?: string;
  port?: number;
  /** Called as soon as each reply is in the kernel (its send or write has completed). */
  sent?: (reply: Buffer, peer: Peer, transport: Transport) => void;
}

export interface FakeUpstream {
  port: number;
  /** Every query as it arrived, raw. */
  received: Array<{ bytes: Buffer; transport: Transport }>;
  close(): Promise<void>;
}

export async function startFakeUpstream(script: Script, options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const host = options.host ?? '127.0.0.1';
  const received: FakeUpstream['received'] = [];
  const answer = async (bytes: Buffer, transport: Transport): Promise<Buffer | undefined> => {
    received.push({ bytes: Buffer.from(bytes), transport });
    const out = await script(dnsPacket.decode(bytes), transport);
    if (out === 'silent') return undefined;
    return Buffer.isBuffer(out) ? out : dnsPacket.encode(out);
  };
  let closed = false;
  const udp = createSocket('udp4');
  udp.on('message', (bytes, peer) => {
    void answer(bytes, 'udp').then((out) => {
      if (!out || closed) return;
      udp.send(out, peer.port, peer.address, (err) => {
        if (!err) options.sent?.(out, { address: peer.address, port: peer.port }, 'udp');
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(options.port ?? 0, host, () => resolve());
  });
  const port = udp.address().port;
  const tcp = createServer((socket) => {
    const messages = new TcpMessages();
    socket.on('data', (chunk) => {
      for (const bytes of messages.push(chunk)) {
        const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
        void answer(bytes, 'tcp').then((out) => {
          if (!out || !socket.writable) return;
          socket.write(withLength(out), (err) => {
            if (!err) options.sent?.(out, peer, 'tcp');
          });
        });
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  return {
    port,
    received,
    close: async () => {
      closed = true;
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

/** An answer to `query` with the given records (A, AAAA, CNAME...) and flags. */
export function answerTo(query: dnsPacket.Packet, answers: dnsPacket.Answer[], extra: Partial<dnsPacket.Packet> = {}): dnsPacket.Packet {
  return { id: query.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: query.questions, answers, ...extra };
}

export function query(name: string, options: { id?: number; type?: 'A' | 'AAAA' | 'MX'; edns?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    id: options.id ?? 4242,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: options.type ?? 'A', class: 'IN' }],
    // A DNS cookie option (code 10), which a proxy must pass on untouched.
    ...(options.edns
      ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [{ code: 10, data: Buffer.from('0123456789abcdef', 'hex') }] } as unknown as dnsPacket.Answer] }
      : {}),
  });
}

/** The addresses (or other data) of a reply's answer section. */
export function answerData(reply: Buffer | undefined): unknown[] | undefined {
  return reply ? (dnsPacket.decode(reply).answers ?? []).map((a) => ('data' in a ? a.data : undefined)) : undefined;
}

/** A reply's rcode (dns-packet decodes it; its types leave it out). */
export function rcodeOf(reply: Buffer): string {
  return (dnsPacket.decode(reply) as unknown as { rcode: string }).rcode;
}

/**
 * One query over UDP to a port on 127.0.0.1, or to another address; undefined when no reply
 * comes in time. `from` binds the asking socket (another loopback address, a given port).
 */
export function askUdp(
  to: number | { host: string; port: number },
  bytes: Buffer,
  timeoutMs = 2000,
  onReply?: (reply: Buffer) => void,
  from?: { address?: string; port?: number },
): Promise<Buffer | undefined> {
  const { host, port } = typeof to === 'number' ? { host: '127.0.0.1', port: to } : to;
  const socket = createSocket('udp4');
  if (from) socket.bind(from.port ?? 0, from.address ?? '127.0.0.1');
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), timeoutMs);
    const done = (reply: Buffer | undefined) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    socket.on('message', (reply) => {
      onReply?.(reply);
      done(reply);
    });
    socket.send(bytes, port, host);
  });
}

/** Several queries on one TCP connection; resolves with the replies in arrival order, once all have come, the server hangs up, or the time is up. */
export function askTcp(port: number, queries: Buffer[], timeoutMs = 2000, from?: string): Promise<Buffer[]> {
  const socket = connect({ port, host: '127.0.0.1', ...(from ? { localAddress: from } : {}) });
  const messages = new TcpMessages();
  const replies: Buffer[] = [];
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(replies);
    };
    socket.on('connect', () => socket.write(Buffer.concat(queries.map(withLength))));
    socket.on('data', (chunk) => {
      replies.push(...messages.push(chunk));
      if (replies.length >= queries.length) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
