// What the simulated avatar and TTS services share (both FastAPI under uvicorn, upstreams.md): an
// http.Server with uvicorn's 5 s keep-alive and its headers, added latency, a record of every request
// (sim/recordRequest.ts: files hashed as they stream in), and the switchable failure modes below.
import http from 'node:http';
import type { Socket } from 'node:net';
import { recordRequest } from './recordRequest.js';
import type { RecordedRequest, SimulatedService, SimulatedServiceOptions } from './types.js';

/**
 * How an upstream can fail on the wire, shared by every simulated service (the WebRTC one too):
 * down: connection refused; reset: the connection is cut after the request, before any response
 * byte; hang: no answer ever; slow: the answer trickles out in pieces `slowGapMs` apart; stall:
 * half the body, then silence; stall-headers: the status line and headers, then silence; break:
 * half the body, then the connection is closed (a body shorter than its Content-Length, ended by a
 * close); reset-body: half the body, then a TCP reset; short-body: the whole body under a
 * Content-Length 1 kB larger, the connection left open (the client waits for bytes that never
 * come); huge-body: the answer padded with spaces to `hugeBodyBytes` (JSON stays valid, an image
 * gets trailing bytes); garbage: bytes that are not HTTP.
 */
export const TRANSPORT_MODES = [
  'down', 'reset', 'hang', 'slow', 'stall', 'stall-headers', 'break', 'reset-body', 'short-body', 'huge-body', 'garbage',
] as const;

/**
 * The modes of the simulated FastAPI services: normal: the service's routes; the transport modes
 * above; html: a 200 HTML page instead of JSON; error: uvicorn's own 500 page (text/plain);
 * status-500/502/503: a FastAPI HTTPException with that status; status-error: 200
 * {"status":"error",...}; no-status: the normal JSON without its "status"; json-array: a JSON
 * array body.
 */
export const COMMON_MODES = [
  'normal', ...TRANSPORT_MODES,
  'html', 'error', 'status-500', 'status-502', 'status-503', 'status-error', 'no-status', 'json-array',
] as const;
export type CommonMode = (typeof COMMON_MODES)[number];

export interface SimAnswer {
  status: number;
  contentType: string;
  body: Buffer;
  /** The value a JSON answer was rendered from (the no-status mode rewrites it). */
  json?: unknown;
}

/** FastAPI's JSONResponse: compact separators, non-ASCII as raw UTF-8, no trailing newline. */
export function jsonAnswer(value: unknown, status = 200): SimAnswer {
  return { status, contentType: 'application/json', body: Buffer.from(JSON.stringify(value)), json: value };
}

/** What FastAPI answers for a missing required form field or file (pydantic v2 error list). */
export function missingFields(names: string[]): SimAnswer {
  return jsonAnswer({ detail: names.map((name) => ({ type: 'missing', loc: ['body', name], msg: 'Field required', input: null })) }, 422);
}

export const NOT_FOUND = () => jsonAnswer({ detail: 'Not Found' }, 404);
export const METHOD_NOT_ALLOWED = () => jsonAnswer({ detail: 'Method Not Allowed' }, 405);

/** The first value of a form field as FastAPI's Form(...) reads it: an empty string counts as missing. */
export function formValue(record: RecordedRequest, name: string): string | undefined {
  const value = record.fields?.find(([field]) => field === name)?.[1];
  return value === '' ? undefined : value;
}

/** The latency of this request: its path's routeLatencyMs, else the service's current latency. */
export function latencyFor(record: RecordedRequest, options: SimulatedServiceOptions, latencyMs: number): number {
  return options.routeLatencyMs?.[record.url.split('?')[0]] ?? latencyMs;
}

export interface SimServerOptions<Mode extends string> extends SimulatedServiceOptions {
  /** Pause between the pieces of an answer in `slow` mode; default 50 ms. */
  slowGapMs?: number;
  /** The modes this service accepts: the common ones and its own. */
  modes: readonly Mode[];
  /** The service's own answer to a request whose body has been read. */
  route(record: RecordedRequest, mode: Mode): SimAnswer;
}

export interface SimServer<Mode extends string> extends SimulatedService {
  readonly mode: Mode;
  /** Switches the mode; 'down' closes the listening socket, leaving it takes the same port again. */
  setMode(mode: Mode): void;
  /** Requests received and not yet answered or abandoned. */
  inFlight(): number;
  /** Requests whose client went away before the body was through. */
  aborted(): number;
}

const UVICORN_500 = () => ({ status: 500, contentType: 'text/plain; charset=utf-8', body: Buffer.from('Internal Server Error') });
const HTML_PAGE = () => ({
  status: 200,
  contentType: 'text/html; charset=utf-8',
  body: Buffer.from('<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n'),
});

function commonAnswer<Mode extends string>(mode: Mode | CommonMode, routed: () => SimAnswer): SimAnswer {
  switch (mode) {
    case 'html': return HTML_PAGE();
    case 'error': return UVICORN_500();
    case 'status-500': return jsonAnswer({ detail: 'Avatar service internal error' }, 500);
    case 'status-502': return jsonAnswer({ detail: 'Bad gateway: lip-sync worker unreachable' }, 502);
    case 'status-503': return jsonAnswer({ detail: 'GPU busy, try again later' }, 503);
    case 'status-error': return jsonAnswer({ status: 'error', message: 'CUDA out of memory' });
    case 'json-array': return jsonAnswer(['unexpected', 'array']);
    case 'no-status': {
      const answer = routed();
      if (typeof answer.json !== 'object' || answer.json === null || Array.isArray(answer.json)) return answer;
      const { status: _status, ...rest } = answer.json as Record<string, unknown>;
      return jsonAnswer(rest, answer.status);
    }
    default: return routed();
  }
}

/** An answer as it goes on the wire; Content-Length is the writer's (the mode can make it lie). */
export interface WireAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

export interface WireOptions {
  slowGapMs: number;
  hugeBodyBytes: number;
}

const SLOW_PIECES = 8;
const SHORT_BY = 1024;
// Just past UPSTREAM_MAX_JSON_BYTES' default (10 MB).
const DEFAULT_HUGE_BODY_BYTES = 10 * 1024 * 1024 + 1;

export function wireOptions(options: SimulatedServiceOptions & { slowGapMs?: number }): WireOptions {
  return { slowGapMs: options.slowGapMs ?? 50, hugeBodyBytes: options.hugeBodyBytes ?? DEFAULT_HUGE_BODY_BYTES };
}

/** The reset and garbage modes: the request is answered with no HTTP at all. True when it was one. */
export function answersWithoutHttp(req: http.IncomingMessage, mode: string): boolean {
  if (mode === 'reset') req.socket.destroy();
  else if (mode === 'garbage') req.socket.end('SSH-2.0-OpenSSH_9.6\r\n\x00\xff not http at all\r\n');
  else return false;
  return true;
}

/** Writes an answer the way the mode says (TRANSPORT_MODES); any other mode writes it whole. */
export function writeAnswer(req: http.IncomingMessage, res: http.ServerResponse, answer: WireAnswer, mode: string, wire: WireOptions): void {
  const body = mode === 'huge-body' && answer.body.length < wire.hugeBodyBytes
    ? Buffer.concat([answer.body, Buffer.alloc(wire.hugeBodyBytes - answer.body.length, ' ')])
    : answer.body;
  res.writeHead(answer.status, {
    ...answer.headers,
    'content-length': String(mode === 'short-body' ? body.length + SHORT_BY : body.length),
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const half = body.subarray(0, Math.floor(body.length / 2));
  if (mode === 'stall-headers') res.flushHeaders();
  else if (mode === 'stall') res.write(half);
  else if (mode === 'break') res.write(half, () => res.destroy());
  else if (mode === 'reset-body') res.write(half, () => req.socket.resetAndDestroy());
  else if (mode === 'slow') void trickle(res, body, wire.slowGapMs);
  else res.end(body);
}

async function trickle(res: http.ServerResponse, body: Buffer, gapMs: number): Promise<void> {
  const size = Math.ceil(body.length / SLOW_PIECES);
  for (let start = 0; start < body.length && !res.destroyed; start += size) {
    if (start > 0) await delay(gapMs);
    res.write(body.subarray(start, start + size));
  }
  res.end();
}

export interface IdleConnections {
  /** False when the request came on a connection already closed as idle: it has been reset. */
  admit(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  lateRequests(): number;
}

/**
 * uvicorn's keep-alive, done by hand instead of by Node's keepAliveTimeout (which would also send a
 * "Keep-Alive: timeout=N" hint that uvicorn and aiohttp never send: a client learns the idle timeout
 * only by meeting it). A connection idle for keepAliveTimeoutMs is closed; its FIN reaches the client
 * finDelayMs later, as over a network. A request sent on it meanwhile meets a reset, which is how a
 * pooled socket kept too long fails in production.
 */
export function closeIdleConnections(server: http.Server, options: SimulatedServiceOptions): IdleConnections {
  const idleMs = options.keepAliveTimeoutMs ?? 5000;
  const finDelayMs = options.finDelayMs ?? 0;
  const timers = new Map<Socket, NodeJS.Timeout>();
  const closed = new WeakSet<Socket>();
  let late = 0;
  server.keepAliveTimeout = 0;
  server.on('connection', (socket: Socket) => socket.once('close', () => {
    clearTimeout(timers.get(socket));
    timers.delete(socket);
  }));

  function closeWhenIdle(socket: Socket): void {
    if (socket.destroyed) return;
    timers.set(socket, setTimeout(() => {
      closed.add(socket);
      setTimeout(() => socket.end(), finDelayMs).unref();
    }, idleMs).unref());
  }

  return {
    admit(req, res) {
      const { socket } = req;
      clearTimeout(timers.get(socket));
      if (closed.has(socket)) {
        late++;
        socket.resetAndDestroy();
        return false;
      }
      res.once('finish', () => closeWhenIdle(socket));
      return true;
    },
    lateRequests: () => late,
  };
}

/** A simulated service's listening side, shared by every simulated service. */
export interface SimListener {
  url: string;
  port: number;
  /** 'down' closes the port (connections are refused); any other mode takes it again. */
  followMode(mode: string): void;
  lateRequests(): number;
  close(): Promise<void>;
}

/** Listens on host:port and hands each request that is not late on an idle-closed connection to `handle`. */
export async function listenSimulated(options: SimulatedServiceOptions, handle: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>): Promise<SimListener> {
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => {
    if (idle.admit(req, res)) void handle(req, res);
  });
  // An idle keep-alive timeout like uvicorn's (5 s unless told): a client that keeps pooled sockets longer meets resets.
  const idle = closeIdleConnections(server, options);
  server.listen(options.port ?? 0, host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${host}:${port}`,
    port,
    followMode(mode) {
      // The port is bound again synchronously when leaving 'down'; only 'listening' is emitted later.
      if (mode === 'down' && server.listening) {
        server.close();
        server.closeAllConnections();
      } else if (mode !== 'down' && !server.listening) {
        server.listen(port, host);
      }
    },
    lateRequests: idle.lateRequests,
    async close() {
      server.closeAllConnections();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function startSimServer<Mode extends string>(options: SimServerOptions<Mode>): Promise<SimServer<Mode>> {
  const wire = wireOptions(options);
  let latencyMs = options.latencyMs ?? 0;
  let mode = 'normal' as Mode;
  let inFlight = 0;
  let aborted = 0;
  const requests: RecordedRequest[] = [];

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    inFlight++;
    res.once('close', () => inFlight--);
    let record: RecordedRequest;
    try {
      record = await recordRequest(req);
    } catch {
      aborted++;
      return;
    }
    requests.push(record);
    if (mode === 'hang') return;
    const wait = latencyFor(record, options, latencyMs);
    if (wait > 0) await delay(wait);
    if (answersWithoutHttp(req, mode)) return;
    const answer = commonAnswer(mode, () => options.route(record, mode));
    writeAnswer(req, res, { status: answer.status, headers: { 'content-type': answer.contentType, server: 'uvicorn' }, body: answer.body }, mode, wire);
  }

  const listener = await listenSimulated(options, handle);

  return {
    url: listener.url,
    port: listener.port,
    requests,
    get mode() {
      return mode;
    },
    setMode(next: Mode) {
      if (!options.modes.includes(next)) throw new Error(`unknown mode "${next}" (one of ${options.modes.join(', ')})`);
      listener.followMode(next);
      mode = next;
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    inFlight: () => inFlight,
    aborted: () => aborted,
    lateRequests: listener.lateRequests,
    close: listener.close,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
