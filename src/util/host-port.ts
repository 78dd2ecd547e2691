/**
 * The address forms the flags share (--listen tcp://, --connect tcp://, --dns-listen,
 * --dns-upstream, --admin-listen): split here once; each flag then says which parts it
 * needs and names its own fix. Pure: strings in, parts out.
 */
import { isIP } from 'node:net';

export interface HostPortText {
  /** '' when the text names no host (`:PORT`). */
  host: string;
  /** The digits after the colon, unchecked; undefined when there is no port. */
  port: string | undefined;
}

/** HOST:PORT, [IPv6]:PORT, :PORT, [IPv6], a bare IPv6 address, or HOST alone; undefined for anything else. */
export function splitHostPort(text: string): HostPortText | undefined {
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] };
  if (isIP(text) === 6) return { host: text, port: undefined };
  const plain = /^([^:[\]/]*)(?::(\d+))?$/.exec(text);
  return plain ? { host: plain[1]!, port: plain[2] } : undefined;
}

/** HOST:PORT, with an IPv6 host in brackets: the form the flags take, for logs and messages. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A TCP or UDP port, 1 to 65535; undefined for anything else. */
export function portNumber(text: string): number | undefined {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost: only this host's processes can reach them. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = /^::ffff:/i.test(host) ? host.slice('::ffff:'.length) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
