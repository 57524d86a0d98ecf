// What the simulated avatar and TTS services share (both FastAPI under uvicorn, upstreams.md): an
// http.Server with uvicorn's 5 s keep-alive and its headers, added latency, a record of every request
// (sim/recordRequest.ts: files hashed as they stream in), and the switchable failure modes below.
import http from 'node:http';
import { recordRequest } from './recordRequest.js';
import type { RecordedRequest, SimulatedService, SimulatedServiceOptions } from './types.js';

/**
 * normal: the service's routes; down: connection refused; reset: the connection is cut after the
 * request, before any response byte; hang: no answer ever; slow: the answer trickles out in pieces
 * `slowGapMs` apart; stall: half the body, then silence; break: half the body, then the connection
 * is cut; garbage: bytes that are not HTTP; html: a 200 HTML page instead of JSON; error: uvicorn's
 * own 500 page (text/plain); status-500/502/503: a FastAPI HTTPException with that status;
 * status-error: 200 {"status":"error",...}; no-status: the normal JSON without its "status";
 * json-array: a JSON array body.
 */
export const COMMON_MODES = [
  'normal', 'down', 'reset', 'hang', 'slow', 'stall', 'break', 'garbage',
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
const SLOW_PIECES = 8;

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

export async function startSimServer<Mode extends string>(options: SimServerOptions<Mode>): Promise<SimServer<Mode>> {
  const host = options.host ?? '127.0.0.1';
  const slowGapMs = options.slowGapMs ?? 50;
  let latencyMs = options.latencyMs ?? 0;
  let mode = 'normal' as Mode;
  let inFlight = 0;
  let aborted = 0;
  const requests: RecordedRequest[] = [];

  function send(req: http.IncomingMessage, res: http.ServerResponse, answer: SimAnswer): void {
    res.writeHead(answer.status, {
      'content-type': answer.contentType,
      'content-length': String(answer.body.length),
      server: 'uvicorn',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const half = answer.body.subarray(0, Math.floor(answer.body.length / 2));
    if (mode === 'stall') res.write(half);
    else if (mode === 'break') res.write(half, () => res.destroy());
    else if (mode === 'slow') void trickle(res, answer.body);
    else res.end(answer.body);
  }

  async function trickle(res: http.ServerResponse, body: Buffer): Promise<void> {
    const size = Math.ceil(body.length / SLOW_PIECES);
    for (let start = 0; start < body.length && !res.destroyed; start += size) {
      if (start > 0) await delay(slowGapMs);
      res.write(body.subarray(start, start + size));
    }
    res.end();
  }

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
    if (latencyMs > 0) await delay(latencyMs);
    if (mode === 'reset') req.socket.destroy();
    else if (mode === 'garbage') req.socket.end('SSH-2.0-OpenSSH_9.6\r\n\x00\xff not http at all\r\n');
    else send(req, res, commonAnswer(mode, () => options.route(record, mode)));
  }

  const server = http.createServer((req, res) => void handle(req, res));
  // uvicorn's idle keep-alive timeout: a client that keeps pooled sockets longer meets resets.
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
  server.listen(options.port ?? 0, host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    get mode() {
      return mode;
    },
    setMode(next: Mode) {
      if (!options.modes.includes(next)) throw new Error(`unknown mode "${next}" (one of ${options.modes.join(', ')})`);
      // The port is bound again synchronously when leaving 'down'; only 'listening' is emitted later.
      if (next === 'down' && server.listening) {
        server.close();
        server.closeAllConnections();
      } else if (next !== 'down' && !server.listening) {
        server.listen(port, host);
      }
      mode = next;
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    inFlight: () => inFlight,
    aborted: () => aborted,
    async close() {
      server.closeAllConnections();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
