/** Builds dnstap messages and DNS responses the way a producer would, for tests and benchmarks. */
import { isIPv4 } from 'node:net';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import protobuf from 'protobufjs';
import { MessageType } from '../../src/dnstap/schema.js';

/** The public dnstap schema through protobufjs: an encoder for tests, and a decoder to compare ours with. */
export const DnstapType = protobuf.loadSync(fileURLToPath(new URL('../../proto/dnstap.proto', import.meta.url))).lookupType('dnstap.Dnstap');

export function dnsResponse(
  question: string,
  answers: dnsPacket.Answer[],
  options: { rcode?: number; additionals?: dnsPacket.Answer[]; authorities?: dnsPacket.Answer[] } = {},
): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (options.rcode ?? 0),
    questions: [{ type: 'A', name: question }],
    answers,
    authorities: options.authorities ?? [],
    additionals: options.additionals ?? [],
  });
}

export function addressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const embedded = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (embedded) {
    const [a = 0, b = 0, c = 0, d = 0] = embedded[2]!.split('.').map(Number);
    address = `${embedded[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail = ''] = address.split('::');
  const groups = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function dnstapFrame(fields: {
  type?: number;
  queryAddress?: Buffer;
  queryPort?: number;
  /** dnstap's SocketProtocol: 1 UDP (the default), 2 TCP. */
  socketProtocol?: number;
  responseMessage?: Buffer;
  identity?: string;
}): Buffer {
  const message = DnstapType.create({
    ...(fields.identity ? { identity: Buffer.from(fields.identity) } : {}),
    type: 1,
    message: {
      type: fields.type ?? MessageType.CLIENT_RESPONSE,
      socketFamily: 1,
      socketProtocol: fields.socketProtocol ?? 1,
      ...(fields.queryAddress ? { queryAddress: fields.queryAddress } : {}),
      queryPort: fields.queryPort ?? 53000,
      ...(fields.responseMessage ? { responseMessage: fields.responseMessage } : {}),
    },
  });
  return Buffer.from(DnstapType.encode(message).finish());
}

export function clientResponse(client: string, question: string, answers: dnsPacket.Answer[]): Buffer {
  return dnstapFrame({ queryAddress: addressBytes(client), responseMessage: dnsResponse(question, answers) });
}
