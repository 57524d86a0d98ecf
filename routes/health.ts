// The Flask original's routes/health.py: liveness, readiness with the upstreams, and ping.
import { Router } from 'express';
import type { Config } from '../config.js';
import { sendJson } from '../services/flaskJson.js';
import type { UpstreamName } from '../services/errors.js';
import type { HttpClient } from '../services/httpClient.js';
import { probeUpstreams } from '../services/upstreamHealth.js';
import { onlyMethods } from '../middleware/methods.js';

export function healthRoutes(config: Config, httpClient: HttpClient): Router {
  const router = Router({ strict: true, caseSensitive: true });

  router.route('/health')
    .get((_req, res) => sendJson(res, 200, { service: 'avatar-gateway', status: 'healthy' }))
    .all(onlyMethods('GET'));

  router.route('/health/detailed')
    .get(async (_req, res) => {
      const probes = await probeUpstreams(config, httpClient);
      const healthy = Object.values(probes).every((probe) => probe.state === 'up');
      // Each upstream's probe with its bulkhead (in_flight, queued) and circuit breaker state.
      const load = httpClient.state();
      const upstreams = Object.fromEntries(Object.entries(probes).map(([name, probe]) => [name, { ...probe, ...load[name as UpstreamName] }]));
      sendJson(res, healthy ? 200 : 503, {
        service: 'avatar-gateway',
        status: healthy ? 'healthy' : 'degraded',
        upstreams,
      });
    })
    .all(onlyMethods('GET'));

  router.route('/ping')
    .get((_req, res) => {
      res.type('text/plain').send('pong');
    })
    .all(onlyMethods('GET'));

  return router;
}
