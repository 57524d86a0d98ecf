// WORKERS=n, the counterpart of gunicorn's --workers: a primary process forks n workers with
// node:cluster (they share the listening socket; each runs server.ts's main as a whole gateway),
// replaces a worker that dies, backing off so that a crash loop does not spin, and on SIGTERM or
// SIGINT passes the signal on, so that every worker drains (startGateway's shutdown) before the
// primary exits.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config.js';
import { flushLogger, type Logger } from './services/logger.js';
import { aggregateWorkerMetrics } from './services/metrics.js';

const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived this long was healthy: the next restart starts the back-off over. */
const HEALTHY_LIFETIME_MS = 10_000;
/** Beyond SHUTDOWN_TIMEOUT_MS, the time a draining worker gets to flush its logs and exit. */
const EXIT_GRACE_MS = 5_000;

export function runPrimary(config: Config, logger: Logger): void {
  aggregateWorkerMetrics();
  const forkedAt = new Map<Worker, number>();
  let anyListening = false;
  let crashesInARow = 0;
  let stopping = false;
  let exitCode = 0;

  function fork(): void {
    forkedAt.set(cluster.fork(), performance.now());
  }

  function exitOnceAllGone(): void {
    if (forkedAt.size > 0) return;
    logger.info('all workers have stopped', { exitCode });
    void flushLogger(logger).then(() => process.exit(exitCode));
  }

  function stop(signal: NodeJS.Signals, reason: string, code: number): void {
    exitCode = Math.max(exitCode, code);
    if (stopping) return;
    stopping = true;
    logger.info(`stopping ${forkedAt.size} workers: each finishes its requests in flight`, { reason });
    for (const worker of forkedAt.keys()) worker.process.kill(signal);
    setTimeout(() => {
      logger.error('workers still running past the shutdown deadline: killing them', {
        pids: [...forkedAt.keys()].map((worker) => worker.process.pid),
      });
      exitCode = 1;
      for (const worker of forkedAt.keys()) worker.process.kill('SIGKILL');
    }, config.server.shutdownTimeoutMs + EXIT_GRACE_MS).unref();
    exitOnceAllGone();
  }

  cluster.on('listening', () => {
    anyListening = true;
  });

  cluster.on('exit', (worker, code, signal) => {
    const lifetime = performance.now() - (forkedAt.get(worker) ?? 0);
    forkedAt.delete(worker);
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    if (stopping) {
      if (code !== 0) exitCode = 1;
      logger.info(`worker ${worker.process.pid} ${how}`);
      exitOnceAllGone();
      return;
    }
    if (!anyListening) {
      // Nothing ever served: a restart would fail the same way (its own error is logged above).
      logger.error(`worker ${worker.process.pid} ${how} before any worker could serve: giving up`);
      stop('SIGTERM', 'a worker failed at start-up', 1);
      return;
    }
    crashesInARow = lifetime >= HEALTHY_LIFETIME_MS ? 1 : crashesInARow + 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (crashesInARow - 1));
    logger.log(code === 0 ? 'warn' : 'error', `worker ${worker.process.pid} ${how}; starting a replacement in ${delay} ms`, {
      crashesInARow,
      lifetime_ms: Math.round(lifetime),
    });
    setTimeout(() => {
      if (!stopping) fork();
    }, delay);
  });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn(`second ${signal}: killing the workers at once`);
      for (const worker of forkedAt.keys()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stop(signal, signal, 0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  logger.info(`primary forking ${config.workers} workers`, { pid: process.pid });
  for (let i = 0; i < config.workers; i++) fork();
}
