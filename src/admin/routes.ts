/** The admin API's paths, each a handler over the daemon's state (see api.ts, metrics.ts). */
import { acceptedView, blockedView, healthView, matchersView, suggestionsView, type ApiSources } from './api.js';
import type { Metrics } from './metrics.js';
import { json, type Handler } from './server.js';

export function adminRoutes(sources: ApiSources, metrics: Metrics): Record<string, Handler> {
  return {
    '/metrics': async () => ({ status: 200, contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    '/api/accepted': async () => json(200, await acceptedView(sources)),
    '/api/matchers': async () => json(200, matchersView(sources)),
    '/api/policies': async () => json(200, sources.policies()),
    '/api/blocked': async () => json(200, blockedView(sources)),
    '/api/suggestions': async () => json(200, suggestionsView(sources)),
    '/healthz': async () => {
      const health = await healthView(sources);
      return json(health.status === 'ok' ? 200 : 503, health);
    },
  };
}
