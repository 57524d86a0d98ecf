// run.py of the Flask original: reads the configuration, listens on PORT, and owns the process's
// life: graceful shutdown on SIGTERM/SIGINT (the counterpart of atexit's cleanup_http_client).
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import dotenv from 'dotenv';
import { createApp } from './app.js';
import { createAuth } from './middleware/auth.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { sendJson } from './services/flaskJson.js';
import { createHttpClient, type HttpClient } from './services/httpClient.js';
import { createLogger, flushLogger, type Logger } from './services/logger.js';
import { probeUpstreams } from './services/upstreamHealth.js';

export interface RunningGateway {
  server: http.Server;
  /** Stops accepting, lets in-flight requests finish (up to SHUTDOWN_TIMEOUT_MS), releases everything. */
  shutdown(reason: string): Promise<void>;
}

export async function startGateway(config: Config, logger: Logger): Promise<RunningGateway> {
  const httpClient = createHttpClient(config, logger);
  const auth = createAuth(config, logger);
  const app = createApp(config, { logger, httpClient, auth });
  const server = http.createServer({
    maxHeaderSize: config.limits.maxHeaderBytes,
    headersTimeout: config.server.headersTimeoutMs,
    // 0: an upload of a gigabyte or an avatar creation of 15 minutes must not be cut off by the
    // server; slow clients are bounded by headersTimeout and the body readers' own limits.
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
  }, app);

  const inFlight = new Set<http.ServerResponse>();
  server.on('request', (_req, res: http.ServerResponse) => {
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(`avatar-gateway listening on http://${config.host}:${port}`, { pid: process.pid });
  void logUpstreams(config, httpClient, logger);

  let stopping: Promise<void> | undefined;
  function shutdown(reason: string): Promise<void> {
    stopping ??= drain(reason);
    return stopping;
  }

  async function drain(reason: string): Promise<void> {
    logger.info('shutting down: no new connections, finishing requests in flight', { reason, inFlight: inFlight.size });
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');

    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), config.server.shutdownTimeoutMs);
    });
    if ((await Promise.race([closed, deadline])) === 'deadline') {
      answerUnfinished(inFlight, logger);
      server.closeAllConnections();
    }
    clearTimeout(timer);
    httpClient.close();
    auth.close();
    logger.info('shutdown complete');
  }

  return { server, shutdown };
}

// At the deadline, a request still waiting gets a 503 rather than a silent cut; one whose
// pass-through already started can only be cut, and is logged.
function answerUnfinished(inFlight: Set<http.ServerResponse>, logger: Logger): void {
  for (const res of inFlight) {
    const req = res.req as http.IncomingMessage & { id?: string };
    logger.error('request still running at the shutdown deadline', { method: req.method, path: req.url?.split('?')[0], requestId: req.id });
    if (res.headersSent) {
      res.destroy();
    } else {
      res.setHeader('Connection', 'close');
      res.setHeader('Retry-After', '1');
      sendJson(res as Parameters<typeof sendJson>[0], 503, { msg: 'Service shutting down, please retry' });
    }
  }
}

async function logUpstreams(config: Config, httpClient: HttpClient, logger: Logger): Promise<void> {
  const probes = await probeUpstreams(config, httpClient);
  for (const [name, probe] of Object.entries(probes)) {
    const url = config.upstreams[name as keyof Config['upstreams']].origin;
    if (probe.state === 'up') logger.info(`upstream ${name} answers at ${url}`, { latency_ms: probe.latency_ms });
    else logger.warn(`upstream ${name} is unreachable at ${url} (the gateway serves anyway)`, { error: probe.error });
  }
}

function readConfig(): Config {
  dotenv.config({ quiet: true });
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`avatar-gateway: configuration error: ${error.message}`);
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger(config);
  const fatal = (error: unknown) => {
    logger.error('fatal error, exiting', { error });
    void flushLogger(logger).finally(() => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  const gateway = await startGateway(config, logger).catch((error) => {
    fatal(error);
    throw error;
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn(`second ${signal}: exiting at once`);
      process.exit(1);
    }
    void gateway.shutdown(signal).then(() => flushLogger(logger)).then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

// Imported by tests for startGateway; run as the program otherwise.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
