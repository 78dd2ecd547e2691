/**
 * Docker's Engine API over node:http: the five calls on-his-name makes, and nothing else.
 *
 *   DockerEndpoint (endpoint.ts) ─▶ DockerClient ─GET─▶ /networks/{id}       → NetworkInspect
 *                                                     /events?filters=…    → a stream of JSON lines
 *                                                     /containers/json     → ContainerSummary[]
 *                                                     /containers/{id}/json → ContainerInspect
 *                                                     /info                → DockerInfo
 *
 * Errors keep the shapes callers branch on (network.ts): a connection's own error as
 * Node gives it (`code` ENOENT, ECONNREFUSED, ECONNRESET, EACCES, with `address` and, over
 * TCP, `port`), and DockerApiError with `statusCode` for an answer that is not 2xx.
 *
 * No API version in the path: dockerd then answers in its own current version. A pinned
 * version cannot cover the Docker we meet: Debian 12's docker.io (20.10) speaks at most
 * 1.41, and Docker 29 refuses anything below 1.44 ("client version 1.41 is too old").
 * The fields we read exist in every version since 20.10, and where a newer one renamed
 * a field (events' `status` → `Action`) the readers take both.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ConfigError } from '../util/errors.js';
import type { ContainerInspect, ContainerSummary, DockerContainers } from './containers.js';
import { dockerEndpoint, type DockerEndpoint } from './endpoint.js';
import type { DockerEvents } from './events.js';
import type { DockerInfo, DockerSystem } from './info.js';
import type { DockerNetworks, NetworkInspect } from './network.js';

/** Far above `GET /containers/json` for thousands of containers; a runaway answer must not take the daemon's memory. */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024;
/** An error answer is one {"message": …}; the rest of a longer one is not read. */
const MAX_ERROR_BYTES = 64 * 1024;

/** Docker answered, but not with 2xx: `statusCode` says what (404: no such network or container). */
export class DockerApiError extends Error {
  override readonly name = 'DockerApiError';
  readonly statusCode: number;
  /** Docker's own words ({"message": …}), or the body as text. */
  readonly reason: string;
  constructor(request: string, statusCode: number, reason: string) {
    super(`Docker answered ${request} with HTTP ${statusCode}: ${reason}`);
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

export class DockerClient implements DockerNetworks, DockerEvents, DockerContainers, DockerSystem {
  private readonly target: RequestOptions;
  private readonly send: (options: RequestOptions) => ClientRequest;

  constructor(endpoint: DockerEndpoint) {
    // A fresh connection for every request (agent: false): a kept-alive one would outlive a
    // dockerd restart and fail the next question with ECONNRESET. Questions are rare.
    if (endpoint.transport === 'unix') {
      this.target = { socketPath: endpoint.path, agent: false };
      this.send = httpRequest;
    } else {
      this.target = { host: endpoint.host, port: endpoint.port, agent: false, ...(endpoint.tls ? tlsFiles(endpoint.tls.certPath) : {}) };
      this.send = endpoint.tls ? httpsRequest : httpRequest;
    }
  }

  getNetwork(id: string): { inspect(): Promise<NetworkInspect> } {
    return { inspect: () => this.json<NetworkInspect>(`/networks/${encodeURIComponent(id)}`) };
  }

  /**
   * The response itself, as UTF-8 text (a character split across chunks stays whole). It
   * ends or closes when dockerd goes away, and is destroyed when `abortSignal` fires.
   */
  async getEvents(options: { filters: Record<string, string[]>; abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream> {
    const response = await this.open(`/events?filters=${filtersQuery(options.filters)}`, options.abortSignal);
    response.setEncoding('utf8');
    return response;
  }

  listContainers(options: { filters: Record<string, string[]> }): Promise<ContainerSummary[]> {
    return this.json<ContainerSummary[]>(`/containers/json?filters=${filtersQuery(options.filters)}`);
  }

  inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json<ContainerInspect>(`/containers/${encodeURIComponent(id)}/json`);
  }

  info(): Promise<DockerInfo> {
    return this.json<DockerInfo>('/info');
  }

  private async json<T>(path: string): Promise<T> {
    const response = await this.open(path);
    const body = await readBody(response, MAX_ANSWER_BYTES);
    if (body.cut) throw new Error(`Docker's answer to GET ${path} is longer than ${MAX_ANSWER_BYTES} bytes`);
    try {
      return JSON.parse(body.text) as T;
    } catch {
      throw new Error(`Docker answered GET ${path} with something that is not JSON: ${body.text.slice(0, 200)}`);
    }
  }

  /** GET `path`; resolves with a 2xx response, rejects with the connection's error or DockerApiError. */
  private open(path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    const what = `GET ${path}`;
    return new Promise((resolve, reject) => {
      const request = this.send({ ...this.target, method: 'GET', path, headers: { Accept: 'application/json' }, ...(signal ? { signal } : {}) });
      // Before the answer, the caller hears the connection's error. After it the promise is
      // settled and the response carries the failure (it errors or closes); the listener stays
      // so that a late error is never unhandled.
      request.on('error', reject);
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(response);
        // An error answer cut short still says enough.
        readBody(response, MAX_ERROR_BYTES).then(
          (body) => reject(new DockerApiError(what, status, errorReason(body.text, response.statusMessage))),
          (err: unknown) => reject(err),
        );
      });
      request.end();
    });
  }
}

/** `filters` as Docker takes it: JSON of name → values, URL-encoded. */
function filtersQuery(filters: Record<string, string[]>): string {
  return encodeURIComponent(JSON.stringify(filters));
}

/** The body as text, up to `limit` bytes; `cut` when there was more (the rest is not read). */
function readBody(response: IncomingMessage, limit: number): Promise<{ text: string; cut: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const text = () => Buffer.concat(chunks).toString('utf8');
    response.on('data', (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        chunks.push(chunk.subarray(0, limit - size));
        resolve({ text: text(), cut: true });
        response.destroy();
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
    });
    response.once('end', () => resolve({ text: text(), cut: false }));
    response.once('error', reject);
    // dockerd gone before the end: 'close' without 'end' (once settled, this changes nothing).
    response.once('close', () => reject(Object.assign(new Error('Docker closed the connection before the end of its answer'), { code: 'ECONNRESET' })));
  });
}

function errorReason(body: string, statusMessage: string | undefined): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not Docker's JSON (a proxy in between?): the text says more than nothing.
  }
  return body.trim().slice(0, 200) || statusMessage || 'no reason given';
}

/**
 * DOCKER_TLS_VERIFY's files, as the docker CLI reads them: the daemon must show a
 * certificate signed by ca.pem, and we show it cert.pem with key.pem.
 */
function tlsFiles(certPath: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (file: string) => {
    try {
      return readFileSync(join(certPath, file));
    } catch (err) {
      throw new ConfigError(`DOCKER_TLS_VERIFY is set but ${join(certPath, file)} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): set DOCKER_CERT_PATH`, { cause: err });
    }
  };
  return { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

/** Docker where the environment says (DOCKER_HOST, as the docker CLI reads it), or at `endpoint`. */
export function dockerClient(endpoint: DockerEndpoint = dockerEndpoint(process.env)): DockerClient {
  return new DockerClient(endpoint);
}
