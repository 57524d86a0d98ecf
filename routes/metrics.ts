// GET /metrics for Prometheus. With METRICS_TOKEN set, the scraper must send it as a bearer token;
// the page names upstreams and routes, which is nothing for the open internet to read.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config.js';
import { onlyMethods } from '../middleware/methods.js';
import { HttpError } from '../services/errors.js';
import type { Metrics } from '../services/metrics.js';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

// Compares digests, so the time taken says nothing about the token's length or its first bytes.
function requireBearer(token: string | undefined) {
  const expected = token === undefined ? undefined : digest(token);
  return function metricsTokenCheck(req: Request, _res: Response, next: NextFunction): void {
    if (expected) {
      const offered = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
      if (offered === undefined || !timingSafeEqual(digest(offered), expected)) {
        next(new HttpError(401, { msg: 'Missing or invalid metrics token' }, { 'WWW-Authenticate': 'Bearer' }));
        return;
      }
    }
    next();
  };
}

export function metricsRoutes(config: Config, metrics: Metrics): Router {
  const router = Router({ strict: true, caseSensitive: true });

  router.route('/metrics')
    .get(requireBearer(config.metricsToken), async (req, res, next) => {
      let text: string;
      try {
        text = await metrics.scrape();
      } catch (error) {
        req.log.error('metrics scrape failed', { error: (error as Error).message });
        next(new HttpError(503, { msg: 'Metrics unavailable, please retry' }));
        return;
      }
      res.setHeader('Content-Type', metrics.contentType);
      res.send(text);
    })
    .all(onlyMethods('GET'));

  return router;
}
