/**
 * A fake Docker for the network and its event stream: the test decides what `network
 * inspect` answers, pushes events down the current /events stream, ends it (dockerd
 * restarting) and makes Docker unreachable for a while.
 */
import { PassThrough } from 'node:stream';
import type { DockerEvents } from '../../src/docker/events.js';
import type { DockerNetworks, NetworkInspect } from '../../src/docker/network.js';

export type FakeNetwork = NetworkInspect;

export function networkInspect(id: string, subnet = '172.18.0.0/16', extra: Partial<FakeNetwork> = {}): FakeNetwork {
  return {
    Id: id.padEnd(64, '0'),
    Name: 'on-his-name',
    Driver: 'bridge',
    IPAM: { Config: [{ Subnet: subnet, Gateway: subnet.replace(/0\/\d+$/, '1') }] },
    ...extra,
  };
}

const unreachable = () => Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED', address: '/var/run/docker.sock' });

export function fakeDocker(initial: FakeNetwork | undefined) {
  let network = initial;
  let reachable = true;
  let stream: PassThrough | undefined;
  const subscriptions: Array<Record<string, string[]>> = [];
  let connected: () => void = () => undefined;
  let lookups = 0;
  let refused = 0;
  const client: DockerNetworks & DockerEvents = {
    getNetwork: () => ({
      inspect: async () => {
        lookups++;
        if (!reachable) throw unreachable();
        if (!network) throw Object.assign(new Error('(HTTP code 404) no such network'), { statusCode: 404 });
        return network;
      },
    }),
    async getEvents(options) {
      if (!reachable) {
        refused++;
        throw unreachable();
      }
      subscriptions.push(options.filters);
      stream = new PassThrough();
      const s = stream;
      options.abortSignal?.addEventListener('abort', () => s.destroy(), { once: true });
      setImmediate(() => connected());
      return s;
    },
  };
  return {
    client,
    subscriptions,
    setNetwork(next: FakeNetwork | undefined) {
      network = next;
    },
    /** Write raw bytes (lines, or pieces of lines) to the current stream. */
    write(text: string) {
      stream?.write(text);
    },
    emit(type: string, action: string, id: string, name = 'on-his-name') {
      stream?.write(`${JSON.stringify({ Type: type, Action: action, Actor: { ID: id, Attributes: { name } }, scope: 'local', time: 1, timeNano: 1 })}\n`);
    },
    /** dockerd stops: the stream ends and, if `down`, Docker refuses connections until up(). */
    stop(down = true) {
      reachable = !down;
      stream?.end();
      stream = undefined;
    },
    up() {
      reachable = true;
    },
    /** Resolves at the next successful subscription to /events. */
    nextConnection(): Promise<void> {
      return new Promise((resolve) => (connected = resolve));
    },
    /** How many times `network inspect` was asked. */
    get lookups() {
      return lookups;
    },
    get connections() {
      return subscriptions.length;
    },
    /** Subscriptions to /events refused while Docker was down. */
    get refused() {
      return refused;
    },
  };
}
