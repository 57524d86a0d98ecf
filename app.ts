// create_app() of the Flask original: builds the Express app from a Config and its dependencies.
// No listening and no globals here, so tests build as many apps as they like.
import express, { type Express } from 'express';
import type { Config } from './config.js';
import { accessLog } from './middleware/accessLog.js';
import { flaskCors } from './middleware/cors.js';
import { errorHandler, notFound } from './middleware/errorHandler.js';
import { requestContext } from './middleware/requestContext.js';
import { securityHeaders } from './middleware/security.js';
import type { Auth } from './middleware/auth.js';
import { avatarRoutes } from './routes/avatar.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { webrtcRoutes } from './routes/webrtc.js';
import type { HttpClient } from './services/httpClient.js';
import type { Logger } from './services/logger.js';
import type { Metrics } from './services/metrics.js';

export interface AppDeps {
  logger: Logger;
  httpClient: HttpClient;
  auth: Auth;
  metrics: Metrics;
}

export function createApp(config: Config, deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('trust proxy', false);

  // First, so that every request is counted and timed, whoever answers it.
  app.use(deps.metrics.recordRequests);
  app.use(securityHeaders());
  app.use(requestContext(deps.logger));
  app.use(accessLog());
  // CORS before anything that can refuse: a 401 without CORS headers never reaches the page.
  app.use(flaskCors(config.corsOrigins));

  app.use('/api', healthRoutes(config, deps.httpClient));
  // The blueprint's routes: /api/avatar/* and /api/tts/models.
  app.use('/api', avatarRoutes(config, deps));
  app.use('/api/webrtc', webrtcRoutes(config, deps));
  app.use(metricsRoutes(config, deps.metrics));

  app.use(notFound);
  app.use(errorHandler());
  return app;
}
