// run.py of the Flask original: reads the configuration, listens on PORT, and owns the process's
// life: graceful shutdown on SIGTERM/SIGINT (the counterpart of atexit's cleanup_http_client).
import cluster from 'node:cluster';
import http from 'node:http';
import type { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import dotenv from 'dotenv';
import { createApp } from './app.js';
import { runPrimary } from './cluster.js';
import { createAuth } from './middleware/auth.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { sendJson } from './services/flaskJson.js';
import { createHttpClient, type HttpClient } from './services/httpClient.js';
import { createLogger, flushLogger, loggerFlushed, type Logger } from './services/logger.js';
import { createMetrics } from './services/metrics.js';
import { probeUpstreams } from './services/upstreamHealth.js';

export interface RunningGateway {
  server: http.Server;
  /** Stops accepting, lets in-flight requests finish (up to SHUTDOWN_TIMEOUT_MS), releases everything. */
  shutdown(reason: string): Promise<void>;
  /** The upstream client, so tests can see its pooled sockets. */
  httpClient: HttpClient;
}

// Connections waiting to be accepted. Node's default (511) drops the SYNs of a burst of a thousand
// users arriving at once, and each dropped one waits a 1 s retransmission; the kernel caps this
// at net.core.somaxconn.
const LISTEN_BACKLOG = 8192;

export async function startGateway(config: Config, logger: Logger): Promise<RunningGateway> {
  // First: it can refuse the configuration (DATABASE_URL) before anything else is started.
  const auth = createAuth(config, logger);
  const metrics = createMetrics();
  const httpClient = createHttpClient(config, logger, metrics.observeUpstream);
  metrics.watchClient(httpClient);
  const app = createApp(config, { logger, httpClient, auth, metrics });
  const server = http.createServer({
    maxHeaderSize: config.limits.maxHeaderBytes,
    headersTimeout: config.server.headersTimeoutMs,
    // Node checks headersTimeout only on this interval (default 30 s): a slowloris client would
    // otherwise hold its connection up to 30 s past the limit.
    connectionsCheckingInterval: Math.min(config.server.headersTimeoutMs, 1000),
    // 0: an upload of a gigabyte or an avatar creation of 15 minutes must not be cut off by the
    // server; slow clients are bounded by headersTimeout and the form readers' BODY_IDLE_TIMEOUT_MS.
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
  });

  const inFlight = new Set<http.ServerResponse>();
  let stopping: Promise<void> | undefined;
  // Before the app, which may answer at once.
  server.on('request', (_req, res: http.ServerResponse) => {
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    // A request that came during the drain on a connection not idle at the signal (its next request
    // was arriving): kept alive, that connection would hold the drain until the deadline.
    if (stopping) res.setHeader('Connection', 'close');
  });
  server.on('request', app);

  // A response cut with its connection emits 'close' (and its listeners log: access log, metrics)
  // only once that socket has closed, which can be after the server's own 'close'.
  const connections = new Set<Socket>();
  let lastConnectionClosed: (() => void) | undefined;
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => {
      connections.delete(socket);
      if (connections.size === 0) lastConnectionClosed?.();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(`avatar-gateway listening on http://${config.host}:${port}`, { pid: process.pid });
  void logUpstreams(config, httpClient, logger);

  function shutdown(reason: string): Promise<void> {
    stopping ??= drain(reason);
    return stopping;
  }

  async function drain(reason: string): Promise<void> {
    // Close first, then say so: once the line is out, a new connection is refused.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    logger.info('shutting down: no new connections, finishing requests in flight', { reason, inFlight: inFlight.size });
    server.closeIdleConnections();
    for (const res of inFlight) {
      if (!res.headersSent) res.setHeader('Connection', 'close');
      // Already streaming with keep-alive (a preview, a WebRTC answer): once done, its connection is
      // idle and is closed, rather than holding the drain until the deadline.
      else res.once('finish', () => server.closeIdleConnections());
    }

    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), config.server.shutdownTimeoutMs);
    });
    if ((await Promise.race([closed, deadline])) === 'deadline') {
      answerUnfinished(inFlight, logger);
      for (const socket of connections) socket.destroy();
    }
    clearTimeout(timer);
    // Every line about a request is written before the caller flushes the log.
    await new Promise<void>((resolve) => {
      if (connections.size === 0) resolve();
      else lastConnectionClosed = resolve;
    });
    httpClient.close();
    auth.close();
    logger.info('shutdown complete');
  }

  return { server, shutdown, httpClient };
}

// At the deadline, a request still waiting gets a 503 rather than a silent cut; one whose
// pass-through already started can only be cut, and is logged.
function answerUnfinished(inFlight: Set<http.ServerResponse>, logger: Logger): void {
  for (const res of inFlight) {
    // originalUrl: inside a mounted router Express has cut req.url down to the router's part.
    const req = res.req as http.IncomingMessage & { id?: string; originalUrl?: string };
    const url = req.originalUrl ?? req.url;
    logger.error('request still running at the shutdown deadline', { method: req.method, path: url?.split('?')[0], requestId: req.id });
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

// One clear line, no stack: the operator has a setting to fix (also for what only start-up can
// check, such as a DATABASE_URL whose user table cannot be read, or a LOG_DIR that cannot be made).
function exitOnConfigError(error: ConfigError): never {
  console.error(`avatar-gateway: configuration error: ${error.message}`);
  process.exit(1);
}

function orExitOnConfigError<T>(start: () => T): T {
  try {
    return start();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    exitOnConfigError(error);
  }
}

async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const config = orExitOnConfigError(() => loadConfig());
  const logger = orExitOnConfigError(() => createLogger(config));
  let dying = false;
  const fatal = (error: unknown) => {
    // Once only: a second error while the logs flush must not write to the ended logger.
    if (dying) return;
    dying = true;
    // After the shutdown flushed the log, stderr is the only place left to say why.
    if (loggerFlushed(logger)) console.error('avatar-gateway: fatal error after the log was closed:', error);
    else logger.error('fatal error, exiting', { error });
    void flushLogger(logger).finally(() => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  if (config.workers > 1 && cluster.isPrimary) {
    runPrimary(config, logger);
    return;
  }
  // With several workers, every line says which one wrote it.
  if (cluster.isWorker) logger.defaultMeta = { pid: process.pid };

  let gateway: RunningGateway;
  try {
    gateway = await startGateway(config, logger);
  } catch (error) {
    if (error instanceof ConfigError) exitOnConfigError(error);
    fatal(error);
    return;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      // A worker can get a signal from the terminal or systemd and the same one from the primary,
      // which keeps the deadline: the repeat is no reason to cut requests short.
      if (cluster.isWorker) return;
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
