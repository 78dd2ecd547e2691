/**
 * Who has which policy, as the kernel and the log see it: the routes of the clients with a
 * policy of their own, and one log line per container that came or whose policy changed.
 */
import type { Logger } from 'pino';
import { describeChange, type Clients, type PolicyChange } from '../policy/clients.js';
import type { Route } from './kernels.js';

/** Each client with a policy of its own, as the kernel routes it. */
export function routesOf(clients: Clients): Route[] {
  return clients.routes().map((r) => ({ client: r.client, policy: r.policy.name }));
}

/** Which policy each container has now, or why it opens nothing. */
export function logChanges(changes: readonly PolicyChange[], log: Logger): void {
  for (const change of changes) {
    const { level, fields, msg } = describeChange(change);
    log[level](fields, msg);
  }
}
