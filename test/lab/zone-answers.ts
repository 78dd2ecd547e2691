/**
 * Answers for the lab's zone from the ZoneRecord list unbound gets, as unbound's auth-zone
 * gives them: the records of the asked type, a CNAME chain inside the zone followed and
 * returned whole, NODATA for a name without that type, NXDOMAIN for a name the zone does
 * not have, REFUSED outside the zone. A Script for startFakeUpstream (test/support/dns.ts).
 */
import dnsPacket from 'dns-packet';
import { answerTo, type Script } from '../support/dns.js';
import type { ZoneRecord } from './unbound.js';

const NXDOMAIN = 3;
const REFUSED = 5;
/** Longer chains than unbound would follow are a broken zone, not a lab. */
const MAX_CHAIN = 8;

export function zoneAnswers(zone: string, records: readonly ZoneRecord[]): Script {
  const origin = bare(zone);
  const byName = new Map<string, ZoneRecord[]>();
  for (const record of records) {
    const name = record.name.endsWith('.') ? bare(record.name) : `${record.name.toLowerCase()}.${origin}`;
    byName.set(name, [...(byName.get(name) ?? []), record]);
  }
  const flags = (rcode: number) => dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER | rcode;

  return (query) => {
    const question = query.questions?.[0];
    const asked = bare(question?.name ?? '');
    if (!question || (asked !== origin && !asked.endsWith(`.${origin}`))) return answerTo(query, [], { flags: flags(REFUSED) });
    if (!byName.has(asked)) return answerTo(query, [], { flags: flags(NXDOMAIN) });
    const answers: dnsPacket.Answer[] = [];
    let name = asked;
    for (let step = 0; step < MAX_CHAIN; step++) {
      const here = byName.get(name) ?? [];
      const alias = question.type === 'CNAME' ? undefined : here.find((r) => r.type === 'CNAME');
      if (!alias) {
        answers.push(...here.filter((r) => r.type === question.type).map((r) => answer(name, r)));
        break;
      }
      answers.push(answer(name, alias));
      name = bare(alias.value);
    }
    return answerTo(query, answers, { flags: flags(0) });
  };
}

function answer(name: string, record: ZoneRecord): dnsPacket.Answer {
  const data = record.type === 'CNAME' ? bare(record.value) : record.value;
  return { name, type: record.type, class: 'IN', ttl: record.ttl ?? 300, data } as dnsPacket.Answer;
}

/** Lower case, without the trailing dot, as dns-packet spells names. */
function bare(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}
