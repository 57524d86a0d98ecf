// Prometheus metrics for the people on call (prom-client). Labels are route templates, upstream
// names and outcome words, never raw paths or avatar names, so the number of series stays small
// whatever the traffic. Under WORKERS=n the primary adds every worker's metrics up, so a scrape
// that lands on any worker answers for the whole instance.
import cluster from 'node:cluster';
import type { NextFunction, Request, Response } from 'express';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamName } from './errors.js';
import type { HttpClient, UpstreamObserver } from './httpClient.js';

export interface Metrics {
  /** Counts and times every request by method, route template and status; tracks those in flight. */
  recordRequests(req: Request, res: Response, next: NextFunction): void;
  /** Given to createHttpClient: each upstream call's outcome and duration. */
  observeUpstream: UpstreamObserver;
  /** Pool, bulkhead and breaker gauges, read from the client when scraped. */
  watchClient(httpClient: HttpClient): void;
  /** The Prometheus text exposition: this process's metrics, or all workers' under WORKERS>1. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

const UPSTREAMS: UpstreamName[] = ['avatar', 'tts', 'webrtc'];
const BREAKER_STATES = ['closed', 'half_open', 'open'] as const;
// From the gateway's own sub-millisecond work to a 15-minute avatar creation.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// What a worker and its primary say to each other over the cluster's IPC channel.
const PRIMARY_AGGREGATES = 'avatar-gateway:primary-aggregates';
const SCRAPE = 'avatar-gateway:scrape';
const SCRAPED = 'avatar-gateway:scraped';
// prom-client's primary gives the workers 5 s to answer; this is the worker's bound on the whole.
const SCRAPE_TIMEOUT_MS = 10_000;

interface ClusterMessage {
  type?: string;
  id?: number;
  text?: string;
  error?: string;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requestLabels = ['method', 'route', 'status'];
  const upstreamLabels = ['upstream', 'outcome'];

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'Requests answered, by method, route template and status ("aborted" when the client left first)',
    labelNames: requestLabels,
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request\'s arrival to the end of its answer, by method, route template and status',
    labelNames: requestLabels,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: 'http_requests_in_flight',
    help: 'Requests received and not yet answered',
    registers: [registry],
  });
  const upstreamCalls = new Counter({
    name: 'upstream_requests_total',
    help: 'Calls to an upstream by outcome: ok (answered below 500), http_error (answered 5xx), timeout, connect, reset, too_large',
    labelNames: upstreamLabels,
    registers: [registry],
  });
  const upstreamDuration = new Histogram({
    name: 'upstream_request_duration_seconds',
    help: 'Time of an upstream call, retries included, to its whole JSON body or to the headers of a pass-through',
    labelNames: upstreamLabels,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });

  function recordRequests(req: Request, res: Response, next: NextFunction): void {
    const stopTimer = requestDuration.startTimer();
    let route = 'unmatched';
    let matched: unknown;
    // Express sets req.route when a route matches, while req.baseUrl is still that router's mount
    // path; once an error has left the router for the app's error handler, baseUrl is reset. So the
    // template is taken at the match. A route matched by a RegExp counts as its router's "/*".
    Object.defineProperty(req, 'route', {
      configurable: true,
      enumerable: true,
      get: () => matched,
      set(value: { path: unknown }) {
        matched = value;
        route = req.baseUrl + (typeof value.path === 'string' ? value.path : '/*');
      },
    });
    inFlight.inc();
    res.once('close', () => {
      inFlight.dec();
      const labels = {
        method: KNOWN_METHODS.has(req.method) ? req.method : 'other',
        route,
        status: res.writableFinished ? String(res.statusCode) : 'aborted',
      };
      requests.inc(labels);
      stopTimer(labels);
    });
    next();
  }

  const observeUpstream: UpstreamObserver = (upstream, outcome, seconds) => {
    const labels = { upstream, outcome: typeof outcome === 'number' ? (outcome >= 500 ? 'http_error' : 'ok') : outcome };
    upstreamCalls.inc(labels);
    upstreamDuration.observe(labels, seconds);
  };

  function perUpstreamGauge(name: string, help: string, read: (upstream: UpstreamName) => number): void {
    new Gauge({
      name,
      help,
      labelNames: ['upstream'],
      registers: [registry],
      collect() {
        for (const upstream of UPSTREAMS) this.set({ upstream }, read(upstream));
      },
    });
  }

  function watchClient(httpClient: HttpClient): void {
    const { agents } = httpClient;
    perUpstreamGauge('upstream_pool_sockets_in_use', 'Pooled connections carrying a call now',
      (upstream) => count(agents[upstream].sockets));
    perUpstreamGauge('upstream_pool_sockets_idle', 'Pooled keep-alive connections waiting for the next call',
      (upstream) => count(agents[upstream].freeSockets));
    perUpstreamGauge('upstream_pool_requests_queued', 'Calls waiting for a connection because the pool is at UPSTREAM_MAX_SOCKETS',
      (upstream) => count(agents[upstream].requests));
    perUpstreamGauge('upstream_bulkhead_in_flight', 'Calls holding a bulkhead slot (at most UPSTREAM_MAX_IN_FLIGHT)',
      (upstream) => httpClient.state()[upstream].in_flight);
    perUpstreamGauge('upstream_bulkhead_queued', 'Calls waiting for a bulkhead slot (at most UPSTREAM_QUEUE_SIZE)',
      (upstream) => httpClient.state()[upstream].queued);
    new Gauge({
      name: 'upstream_breaker_state',
      help: 'The circuit breaker\'s state: 1 for the current one (closed, half_open or open), else 0',
      labelNames: ['upstream', 'state'],
      registers: [registry],
      collect() {
        const load = httpClient.state();
        for (const upstream of UPSTREAMS) {
          for (const state of BREAKER_STATES) this.set({ upstream, state }, load[upstream].breaker === state ? 1 : 0);
        }
      },
    });
  }

  return {
    recordRequests,
    observeUpstream,
    watchClient,
    scrape: cluster.isWorker ? workerScrape(registry) : () => registry.metrics(),
    contentType: registry.contentType,
  };
}

function count(byHost: NodeJS.ReadOnlyDict<unknown[]>): number {
  let total = 0;
  for (const list of Object.values(byHost)) total += list?.length ?? 0;
  return total;
}

// A worker answers a scrape with the primary's sum over all workers, once the primary has said it
// aggregates (a worker of some other cluster manager, pm2 say, answers for itself).
function workerScrape(registry: Registry): () => Promise<string> {
  new AggregatorRegistry(); // makes prom-client answer the primary's collection requests...
  AggregatorRegistry.setRegistries([registry]); // ...from this registry
  let primaryAggregates = false;
  let nextId = 0;
  const waiting = new Map<number, (message: ClusterMessage) => void>();
  process.on('message', (message: ClusterMessage) => {
    if (message?.type === PRIMARY_AGGREGATES) primaryAggregates = true;
    if (message?.type === SCRAPED && message.id !== undefined) waiting.get(message.id)?.(message);
  });

  return () => {
    if (!primaryAggregates || !process.send) return registry.metrics();
    const id = nextId++;
    return new Promise<string>((resolve, reject) => {
      const settle = (message: ClusterMessage) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (message.error === undefined) resolve(message.text ?? '');
        else reject(new Error(`metrics from the workers: ${message.error}`));
      };
      const timer = setTimeout(() => settle({ error: 'the primary did not answer' }), SCRAPE_TIMEOUT_MS);
      waiting.set(id, settle);
      process.send!({ type: SCRAPE, id });
    });
  };
}

/** In the primary (cluster.ts): answers each worker's scrape with every worker's metrics summed. */
export function aggregateWorkerMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('listening', (worker) => {
    if (worker.isConnected()) worker.send({ type: PRIMARY_AGGREGATES });
  });
  cluster.on('message', (worker, message: ClusterMessage) => {
    if (message?.type !== SCRAPE) return;
    void aggregator.clusterMetrics().then(
      (text): ClusterMessage => ({ type: SCRAPED, id: message.id, text }),
      (error: Error): ClusterMessage => ({ type: SCRAPED, id: message.id, error: error.message }),
    ).then((answer) => {
      if (worker.isConnected()) worker.send(answer);
    });
  });
}
