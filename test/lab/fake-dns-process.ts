/**
 * The process behind fake-dns.ts, started inside a lab namespace as
 * `node --import tsx fake-dns-process.ts CONFIG.json`. Prints "ready" once it answers,
 * then one JSON line per query it receives ({"name":…,"type":…,"transport":…}).
 */
import { readFile } from 'node:fs/promises';
import dnsPacket from 'dns-packet';
import { answerTo, startFakeUpstream, type Script } from '../support/dns.js';
import type { FakeDnsConfig } from './fake-dns.js';
import { zoneAnswers } from './zone-answers.js';

const config = JSON.parse(await readFile(process.argv[2] ?? '', 'utf8')) as FakeDnsConfig;
const zone = zoneAnswers(config.zone, config.records);
const silent = config.silent ? new RegExp(config.silent, 'i') : undefined;
const delayed = config.delay ? { match: new RegExp(config.delay.match, 'i'), ms: config.delay.ms } : undefined;
const flood = config.flood ? { ...config.flood, suffix: config.flood.suffix.toLowerCase().replace(/\.$/, '') } : undefined;
/** The next fresh flood address, counted from flood.base. */
let next = 0;

const floodAnswer = (query: dnsPacket.Packet, name: string): dnsPacket.Packet => {
  const base = flood!.base.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const answers = Array.from({ length: flood!.perAnswer }, () => {
    const value = base + next++;
    const data = [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
    return { name, type: 'A', class: 'IN', ttl: flood!.ttl, data } as dnsPacket.Answer;
  });
  return answerTo(query, answers, { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER });
};

const script: Script = async (query, transport) => {
  const question = query.questions?.[0];
  const name = (question?.name ?? '').toLowerCase();
  process.stdout.write(`${JSON.stringify({ name, type: question?.type, transport })}\n`);
  if (silent?.test(name)) return 'silent';
  if (delayed?.match.test(name)) await new Promise((resolve) => setTimeout(resolve, delayed.ms));
  if (flood && transport === 'tcp' && name.endsWith(`.${flood.suffix}`)) return floodAnswer(query, question!.name);
  return zone(query, transport);
};

const dns = await startFakeUpstream(script, { host: config.listen, port: config.port });
process.stdout.write('ready\n');
process.once('SIGTERM', () => void dns.close().finally(() => process.exit(0)));
