// The one upstream client of the process (the Flask original's services/http_client.py): a got
// instance carrying the defaults, extended once per upstream with its own keep-alive agents. Call
// sites say only what differs (method, path, a route's timeout); failures come out as UpstreamError.
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import got, { type Got, type Method, type RequestError } from 'got';
import type { Config } from '../config.js';
import { UpstreamError, type UpstreamErrorKind, type UpstreamName } from './errors.js';
import type { Logger } from './logger.js';
import { createUpstreamGuards, outcomeOf, type UpstreamLoad } from './upstreamGuard.js';

export interface UpstreamCall {
  method?: Method;
  /** Path (and query) on the upstream, starting with '/'. It can never change the host. */
  path: string;
  timeoutMs: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string | Buffer | Readable;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  requestId?: string;
  /** Aborts the upstream call, e.g. when the client goes away. */
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface UpstreamStream {
  status: number;
  headers: IncomingHttpHeaders;
  /**
   * The body as it arrives; it errors if the upstream breaks or stalls mid-body. The caller reads
   * it to its end or destroys it: until then the call holds its bulkhead slot.
   */
  body: Readable;
}

export interface HttpClient {
  /** A call whose answer the gateway reads whole (JSON), bounded by UPSTREAM_MAX_JSON_BYTES. */
  request(upstream: UpstreamName, call: UpstreamCall): Promise<UpstreamResponse>;
  /** A call whose answer is passed through as it arrives; resolves once the headers are in. */
  stream(upstream: UpstreamName, call: UpstreamCall): Promise<UpstreamStream>;
  /** Each upstream's bulkhead and circuit breaker, for health and metrics. */
  state(): Record<UpstreamName, UpstreamLoad>;
  readonly agents: Readonly<Record<UpstreamName, http.Agent>>;
  close(): void;
}

/** Told of every finished call (services/metrics.ts): the status it answered, or how it failed. */
export type UpstreamObserver = (upstream: UpstreamName, outcome: number | UpstreamErrorKind, seconds: number) => void;

const RETRY_ERROR_CODES = ['ECONNRESET', 'ECONNREFUSED', 'EPIPE'];
const RETRY_STATUS_CODES = [502, 503, 504];
const IDEMPOTENT_METHODS: Method[] = ['GET', 'HEAD'];

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** Parses an upstream body as JSON, or fails with the invalid_json kind carrying the text. */
export function parseJson(upstream: UpstreamName, response: UpstreamResponse): unknown {
  try {
    return JSON.parse(response.text);
  } catch (error) {
    throw new UpstreamError('invalid_json', upstream, (error as Error).message, response.text);
  }
}

function errorKind(error: RequestError): UpstreamErrorKind {
  if (error.name === 'TimeoutError' || error.code === 'ETIMEDOUT') return 'timeout';
  if (CONNECT_CODES.has(error.code) || error.code?.startsWith('HPE_')) return 'connect';
  return 'reset';
}

// Plain words for the client: got's own messages name internal hosts and ports.
function describe(error: RequestError, kind: UpstreamErrorKind): string {
  if (kind === 'timeout') return 'timed out';
  if (error.code === 'ECONNREFUSED') return 'connection refused';
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') return 'host not found';
  if (error.code?.startsWith('HPE_')) return 'invalid HTTP response';
  // A ReadError broke the body after the headers: a reset and a plain close look alike to got.
  if (error.name === 'ReadError') return 'connection closed before the response was complete';
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return 'connection reset';
  if (kind === 'reset') return 'connection closed before the response was complete';
  return 'connection failed';
}

/** Also for errors a streamed body emits after the headers (the WebRTC pass-through logs and maps them). */
export function toUpstreamError(upstream: UpstreamName, error: unknown): UpstreamError {
  if (error instanceof UpstreamError) return error;
  const requestError = error as RequestError;
  const kind = errorKind(requestError);
  return new UpstreamError(kind, upstream, `${upstream} service: ${describe(requestError, kind)}`);
}

/**
 * A body the gateway must read whole (JSON, an error text), never past `maxBytes`
 * (UPSTREAM_MAX_JSON_BYTES); a declared Content-Length over it is refused before a byte is read.
 */
export async function readText(upstream: UpstreamName, { status, headers, body }: UpstreamStream, maxBytes: number): Promise<UpstreamResponse> {
  const tooLarge = () => new UpstreamError('too_large', upstream, `${upstream} service: response larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = Number(headers['content-length'] ?? 0);
  try {
    if (size > maxBytes) throw tooLarge();
    size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  } finally {
    body.destroy();
  }
  return { status, headers, text: Buffer.concat(chunks).toString('utf8') };
}

export function createHttpClient(config: Pick<Config, 'upstreams' | 'pool' | 'bulkhead' | 'breaker'>, logger: Logger, observer?: UpstreamObserver): HttpClient {
  const { pool } = config;
  const agentOptions: http.AgentOptions = {
    keepAlive: true,
    maxSockets: pool.maxSockets,
    maxFreeSockets: pool.maxFreeSockets,
    // An idle pooled socket is closed after this long: before uvicorn's 5 s keep-alive closes it
    // under us, so a reused socket is never one the upstream is about to reset.
    timeout: pool.idleSocketMs,
    scheduling: 'lifo',
  };
  const agents = {
    avatar: new http.Agent(agentOptions),
    tts: new http.Agent(agentOptions),
    webrtc: new http.Agent(agentOptions),
  };
  const httpsAgents = {
    avatar: new https.Agent(agentOptions),
    tts: new https.Agent(agentOptions),
    webrtc: new https.Agent(agentOptions),
  };

  // Retries are the attempt loop's below (one rule for whole and streamed calls), so got makes one
  // request per call and hands every status over as an answer.
  const base = got.extend({
    http2: false,
    decompress: false,
    followRedirect: false,
    throwHttpErrors: false,
    retry: { limit: 0 },
    headers: { 'user-agent': 'avatar-gateway' },
  });
  const clients: Record<UpstreamName, Got> = {
    avatar: base.extend({ agent: { http: agents.avatar, https: httpsAgents.avatar } }),
    tts: base.extend({ agent: { http: agents.tts, https: httpsAgents.tts } }),
    webrtc: base.extend({ agent: { http: agents.webrtc, https: httpsAgents.webrtc } }),
  };

  // Joins by text, never by URL resolution: '//evil.example/x' stays a path on the upstream.
  function target(upstream: UpstreamName, path: string): URL {
    const baseUrl = config.upstreams[upstream];
    const basePath = baseUrl.pathname.replace(/\/$/, '');
    const url = new URL(baseUrl.origin + basePath + path);
    // Dot segments ('/../', '%2e%2e') are resolved by URL: they must not climb out of the base path.
    if (url.origin !== baseUrl.origin || !url.pathname.startsWith(basePath + '/')) {
      throw new UpstreamError('connect', upstream, 'refused to leave the upstream host');
    }
    return url;
  }

  function options(call: UpstreamCall) {
    const method = call.method ?? 'GET';
    return {
      method,
      headers: { ...call.headers, ...(call.requestId && { 'x-request-id': call.requestId }) },
      // got.stream waits for a body to be piped in on every method but GET and HEAD: none is empty.
      body: call.body ?? (call.form || IDEMPOTENT_METHODS.includes(method) ? undefined : ''),
      form: call.form,
      signal: call.signal,
      // Bounds the wait for the headers and each stall in the body, not a body that keeps flowing.
      timeout: { socket: call.timeoutMs },
    };
  }

  function logCall(upstream: UpstreamName, call: UpstreamCall, started: number, outcome: number | UpstreamErrorKind): void {
    const ms = performance.now() - started;
    logger.debug('upstream call', {
      upstream,
      method: call.method ?? 'GET',
      path: call.path.split('?')[0],
      status: outcome,
      ms: Math.round(ms),
      requestId: call.requestId,
    });
    observer?.(upstream, outcome, ms / 1000);
  }

  /** One request; resolves once the headers are in (got.stream: cheaper per call than got's promise). */
  async function attempt(upstream: UpstreamName, url: URL, call: UpstreamCall): Promise<UpstreamStream> {
    const body = clients[upstream].stream(url, options(call));
    try {
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        body.once('response', resolve);
        body.once('error', reject);
      });
      return { status: response.statusCode!, headers: response.headers, body };
    } catch (error) {
      body.destroy();
      throw error;
    }
  }

  /**
   * Makes the call and gives its answer to `read`, retrying an idempotent one (api.md: at most
   * UPSTREAM_RETRY_LIMIT more times, after a backoff) on a reset or refused connection, or a
   * 502/503/504 that is not the last chance; read() failing with a reset is retried too. Nothing
   * has reached the client before read() returns, so a retry is never seen.
   */
  async function callWithRetries<T>(upstream: UpstreamName, call: UpstreamCall, read: (answer: UpstreamStream) => Promise<T>): Promise<T> {
    const started = performance.now();
    const url = target(upstream, call.path);
    const idempotent = IDEMPOTENT_METHODS.includes(call.method ?? 'GET');
    for (let tries = 1; ; tries++) {
      const mayRetry = idempotent && tries <= pool.retryLimit;
      try {
        const answer = await attempt(upstream, url, call);
        if (mayRetry && RETRY_STATUS_CODES.includes(answer.status)) {
          answer.body.destroy();
        } else {
          const result = await read(answer);
          logCall(upstream, call, started, answer.status);
          return result;
        }
      } catch (error) {
        if (!(mayRetry && RETRY_ERROR_CODES.includes((error as RequestError).code))) {
          const failure = toUpstreamError(upstream, error);
          logCall(upstream, call, started, failure.kind);
          throw failure;
        }
      }
      // A client that leaves during the pause ends the call like one that leaves during a request.
      await delay(pool.retryBackoffMs, undefined, { signal: call.signal }).catch((error) => {
        throw toUpstreamError(upstream, error);
      });
    }
  }

  // Every call passes its upstream's circuit breaker and bulkhead first; a path that would leave
  // the upstream host is refused before it counts as a call.
  const guards = createUpstreamGuards(config);

  /** A call under its upstream's guards; a pass-through (`bodyOf`) keeps its slot until its body ends. */
  async function guardedCall<T>(upstream: UpstreamName, call: UpstreamCall, read: (answer: UpstreamStream) => Promise<T>, bodyOf?: (result: T) => Readable): Promise<T> {
    target(upstream, call.path);
    const admission = await guards.admit(upstream, call.signal);
    let result: T;
    try {
      result = await callWithRetries(upstream, call, read);
    } catch (error) {
      admission.settle(outcomeOf(error, call.signal));
      admission.release();
      throw error;
    }
    admission.settle('success');
    const body = bodyOf?.(result);
    // Read to its end, or destroyed (client gone, upstream broke).
    if (body) body.once('end', admission.release).once('close', admission.release);
    else admission.release();
    return result;
  }

  return {
    request: (upstream, call) => guardedCall(upstream, call, (answer) => readText(upstream, answer, pool.maxJsonBytes)),
    stream: (upstream, call) => guardedCall(upstream, call, async (answer) => answer, (answer) => answer.body),
    state: guards.state,
    agents,
    close() {
      for (const agent of [...Object.values(agents), ...Object.values(httpsAgents)]) agent.destroy();
    },
  };
}
