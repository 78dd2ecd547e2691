/**
 * Docker's event stream at the edge: one long GET /events, JSON objects one per line.
 *
 *   dockerd ─/events (chunks)─▶ EventLineDecoder (pure) ─DockerEvent─▶ onEvent
 *
 * The stream ends when dockerd stops or restarts; followEvents() then reconnects with
 * backoff, saying so once per outage (not once per retry), and calls onConnect after every
 * connection so that the caller can catch up on what it missed (events are not replayed).
 */
import type { Logger } from 'pino';
import { reconnectDelay, type BackoffPolicy } from '../util/backoff.js';
import { sleep, systemClock, type Clock } from '../util/clock.js';

export interface DockerEvent {
  /** network, daemon, container… */
  type: string;
  /** create, destroy, connect, disconnect, reload… */
  action: string;
  /** The network's id for network events. */
  id: string;
  /** Actor.Attributes: `name` is the network's name for network events. */
  attributes: Record<string, string>;
}

/** The slice of Docker's API we use for events (client.ts), so tests can pass a fake stream. */
export interface DockerEvents {
  getEvents(options: { filters: Record<string, string[]>; abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream>;
}

/** No Docker event comes near this; a longer line is garbage and is dropped, not buffered. */
export const MAX_EVENT_LINE = 256 * 1024;

/**
 * JSON lines split anywhere across chunks → events. Lines that are not events (bad JSON,
 * no type) are counted and skipped; a line over MAX_EVENT_LINE is dropped up to its end.
 */
export class EventLineDecoder {
  skipped = 0;
  private partial = '';
  private discarding = false;

  push(chunk: Buffer | string): DockerEvent[] {
    const text = this.partial + chunk.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const events: DockerEvent[] = [];
    for (const line of lines) {
      if (this.discarding) {
        this.discarding = false; // the end of the overlong line
        continue;
      }
      const event = parseEventLine(line);
      if (event) events.push(event);
      else if (line.trim()) this.skipped++;
    }
    if (this.partial.length > MAX_EVENT_LINE) {
      if (!this.discarding) this.skipped++;
      this.partial = '';
      this.discarding = true;
    }
    return events;
  }
}

/** One line of /events; undefined for anything that is not an event. Old and new field names. */
export function parseEventLine(line: string): DockerEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as { Type?: unknown; Action?: unknown; status?: unknown; id?: unknown; Actor?: { ID?: unknown; Attributes?: unknown } };
  const type = m.Type;
  const action = m.Action ?? m.status;
  if (typeof type !== 'string' || typeof action !== 'string') return undefined;
  const id = typeof m.Actor?.ID === 'string' ? m.Actor.ID : typeof m.id === 'string' ? m.id : '';
  return { type, action, id, attributes: stringAttributes(m.Actor?.Attributes) };
}

function stringAttributes(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export interface FollowOptions {
  docker: DockerEvents;
  /** Docker ANDs different filter keys (network=NAME would hide daemon events), so the name is compared exactly on our side. */
  filters: Record<string, string[]>;
  onEvent(event: DockerEvent): void;
  /** After each connection (the first one too): catch up on what happened while not listening. */
  onConnect(reconnected: boolean): void;
  log: Logger;
  backoff?: BackoffPolicy;
  /** For the backoff and the outage's length; systemClock unless a test moves time itself. */
  clock?: Clock;
}

export interface EventFollower {
  /** Resolves once the current stream is closed and no reconnect is pending. */
  stop(): Promise<void>;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 10_000 };

export function followEvents(options: FollowOptions): EventFollower {
  const abort = new AbortController();
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const clock = options.clock ?? systemClock;
  const { log } = options;

  const loop = async () => {
    let connected = false;
    let outage: { since: number; reason: string } | undefined;
    let attempt = 0;
    while (!abort.signal.aborted) {
      let stream: NodeJS.ReadableStream;
      try {
        stream = await options.docker.getEvents({ filters: options.filters, abortSignal: abort.signal });
      } catch (err) {
        if (abort.signal.aborted) return;
        if (!outage) {
          outage = { since: clock.now(), reason: describe(err) };
          log.warn({ err: outage.reason }, "cannot follow Docker's events (dockerd restarting?); retrying until it answers");
        }
        await sleep(clock, reconnectDelay(attempt++, backoff), abort.signal).catch(() => undefined);
        continue;
      }
      if (outage) log.info({ downForMs: clock.now() - outage.since }, "following Docker's events again");
      const reconnected = connected;
      connected = true;
      outage = undefined;
      attempt = 0;
      options.onConnect(reconnected);
      const reason = await read(stream, options.onEvent, log, abort.signal);
      if (abort.signal.aborted) return;
      outage = { since: clock.now(), reason };
      log.warn({ err: reason }, "Docker's event stream ended (dockerd stopped or restarting?); reconnecting");
    }
  };
  const running = loop();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}

/** Feed the stream to the decoder until it ends; resolves with why it ended. */
function read(stream: NodeJS.ReadableStream, onEvent: (event: DockerEvent) => void, log: Logger, signal: AbortSignal): Promise<string> {
  const decoder = new EventLineDecoder();
  return new Promise((resolve) => {
    let done = false;
    const finish = (reason: string) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      stream.removeListener('data', onData);
      if (decoder.skipped > 0) log.warn({ skipped: decoder.skipped }, 'skipped lines of the Docker event stream that were not events');
      resolve(reason);
    };
    const onData = (chunk: Buffer | string) => {
      for (const event of decoder.push(chunk)) {
        try {
          onEvent(event);
        } catch (err) {
          log.error({ err: describe(err), event }, 'handling a Docker event failed');
        }
      }
    };
    const onAbort = () => {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      finish('stopped');
    };
    stream.on('data', onData);
    stream.once('end', () => finish('the stream ended'));
    stream.once('close', () => finish('the stream closed'));
    // `on`, not `once`: a second error after the first must not go unhandled.
    stream.on('error', (err: unknown) => finish(describe(err)));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
