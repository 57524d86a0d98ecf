// A simulated WebRTC signalling service (LiveTalking on aiohttp, upstreams.md): its routes with
// aiohttp's answers (Python json.dumps bodies, aiohttp_cors headers, plain-text error pages), a
// record of every request, and switchable failure modes for the gateway's pass-through tests.
import { randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { recordRequest } from './recordRequest.js';
import { TRANSPORT_MODES, answersWithoutHttp, latencyFor, listenSimulated, wireOptions, writeAnswer } from './simServer.js';
import type { RecordedRequest, SimulatedService, SimulatedServiceOptions } from './types.js';

/**
 * normal: the routes below; the transport modes every simulated service shares (TRANSPORT_MODES
 * in sim/simServer.ts: down, reset, hang, slow, stall, stall-headers, break, reset-body,
 * short-body, huge-body, garbage); error: aiohttp's 500 page; unavailable: 503; gzip: answers
 * compressed (Content-Encoding: gzip); full: /offer answers "reach max session".
 */
export const WEBRTC_MODES = ['normal', ...TRANSPORT_MODES, 'error', 'unavailable', 'gzip', 'full'] as const;
export type WebrtcMode = (typeof WEBRTC_MODES)[number];

export interface WebrtcServiceOptions extends SimulatedServiceOptions {
  /** Pause between the pieces of an answer in `slow` mode; default 50 ms. */
  slowGapMs?: number;
}

export interface SimulatedWebrtcService extends SimulatedService {
  /** Sessions handed out by /offer, as LiveTalking keeps them. */
  readonly sessions: ReadonlySet<number>;
  /** Added to every answer (tests use it to send hop-by-hop or odd headers). */
  extraHeaders: Record<string, string | string[]>;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const SERVER = 'Python/3.10 aiohttp/3.9.5';
// Routes LiveTalking's app registers (all POST); everything else is its static demo directory.
const POST_ROUTES = new Set(['/offer', '/human', '/humanaudio', '/interrupt_talk', '/set_audiotype', '/record', '/is_speaking']);
const STATIC_FILES: Record<string, [string, string]> = {
  '/webrtcapi.html': ['text/html', '<!DOCTYPE html>\n<html><head><meta charset="UTF-8"><title>WebRTC webcam</title></head>\n<body><button id="start">Start</button><video id="video" autoplay playsinline></video>\n<script src="client.js"></script></body></html>\n'],
  '/client.js': ['application/javascript', 'var pc = null;\nfunction negotiate() {\n  return fetch("/offer", { method: "POST", headers: { "Content-Type": "application/json" } });\n}\n'],
};

/** Python's json.dumps with its defaults: ", " and ": " separators. */
function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${pythonJson(item)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

function json(value: unknown, status = 200): Answer {
  return { status, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: Buffer.from(pythonJson(value)) };
}

function text(status: number, body: string, contentType = 'text/plain; charset=utf-8'): Answer {
  return { status, headers: { 'Content-Type': contentType }, body: Buffer.from(body) };
}

// aiohttp's own error pages.
const INTERNAL_ERROR = () => text(500, '500 Internal Server Error\n\nServer got itself in trouble');
const NOT_FOUND = () => text(404, '404: Not Found');
const UNAVAILABLE = () => text(503, '503: Service Unavailable');

/** An aiortc-style SDP answer: one media section per section of the offer, same mids. */
function sdpAnswer(offer: string): string {
  const kinds = [...offer.matchAll(/^m=(\w+)/gm)].map((match) => match[1]);
  const mids = [...offer.matchAll(/^a=mid:(\S+)/gm)].map((match) => match[1]);
  const media = kinds.length ? kinds : ['audio', 'video'];
  const ufrag = randomBytes(4).toString('hex');
  const pwd = randomBytes(11).toString('hex');
  const fingerprint = randomBytes(32).toString('hex').toUpperCase().match(/../g)!.join(':');
  const session = randomInt(1e9, 4e9);
  const lines = ['v=0', `o=- ${session} ${session} IN IP4 0.0.0.0`, 's=-', 't=0 0', `a=group:BUNDLE ${media.map((_, i) => mids[i] ?? i).join(' ')}`, 'a=msid-semantic:WMS *'];
  media.forEach((kind, i) => {
    const codec = kind === 'audio' ? ['111', 'opus/48000/2'] : ['96', 'VP8/90000'];
    lines.push(
      `m=${kind} 9 UDP/TLS/RTP/SAVPF ${codec[0]}`, 'c=IN IP4 0.0.0.0', 'a=sendonly', `a=mid:${mids[i] ?? i}`,
      `a=msid:${randomBytes(16).toString('hex')} ${randomBytes(16).toString('hex')}`, 'a=rtcp-mux',
      `a=rtpmap:${codec[0]} ${codec[1]}`, `a=candidate:${randomBytes(16).toString('hex')} 1 udp 2130706431 127.0.0.1 ${randomInt(40000, 60000)} typ host`,
      'a=end-of-candidates', `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `a=fingerprint:sha-256 ${fingerprint}`, 'a=setup:active',
    );
  });
  return lines.join('\r\n') + '\r\n';
}

// aiohttp_cors as LiveTalking sets it up: any origin, with credentials. Its preflight handler
// refuses an OPTIONS that is not a preflight.
function corsHeaders(req: http.IncomingMessage): Record<string, string> {
  const origin = req.headers.origin;
  return origin ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true' } : {};
}

function preflight(req: http.IncomingMessage): Answer {
  const origin = req.headers.origin;
  const method = req.headers['access-control-request-method'];
  if (!origin) return text(403, 'CORS preflight request failed: origin header is not specified in the request');
  if (!method) return text(403, "CORS preflight request failed: 'Access-Control-Request-Method' header is not specified");
  const headers: Record<string, string> = { 'Access-Control-Allow-Methods': String(method), 'Access-Control-Max-Age': '86400' };
  const requested = req.headers['access-control-request-headers'];
  if (requested) headers['Access-Control-Allow-Headers'] = String(requested);
  return { status: 200, headers, body: Buffer.alloc(0) };
}

export async function startWebrtcService(options: WebrtcServiceOptions = {}): Promise<SimulatedWebrtcService> {
  let latencyMs = options.latencyMs ?? 0;
  const wire = wireOptions(options);
  let mode: WebrtcMode = 'normal';
  const requests: RecordedRequest[] = [];
  const sessions = new Set<number>();

  function route(record: RecordedRequest, req: http.IncomingMessage): Answer {
    const path = record.url.split('?')[0];
    if (record.method === 'OPTIONS') return preflight(req);
    if (POST_ROUTES.has(path)) {
      if (record.method !== 'POST') return { ...text(405, '405: Method Not Allowed'), headers: { 'Content-Type': 'text/plain; charset=utf-8', Allow: 'POST' } };
      return signalling(path, record);
    }
    if (record.method === 'GET' || record.method === 'HEAD') {
      if (path === '/health') return json({ status: 'ok', sessions: sessions.size });
      const file = STATIC_FILES[path];
      return file ? text(200, file[1], `${file[0]}; charset=utf-8`) : NOT_FOUND();
    }
    return NOT_FOUND();
  }

  // LiveTalking's handlers: `await request.json()` fails as a 500 on /offer; the others wrap
  // their work in try/except and answer {"code": -1, "msg": str(e)}.
  function signalling(path: string, record: RecordedRequest): Answer {
    if (path === '/offer') {
      const offer = record.json as { sdp?: unknown; type?: unknown } | undefined;
      if (!offer || typeof offer.sdp !== 'string') return INTERNAL_ERROR();
      if (mode === 'full') return json({ code: -1, msg: 'reach max session' });
      const sessionid = randomInt(100000, 1000000);
      sessions.add(sessionid);
      return json({ sdp: sdpAnswer(offer.sdp), type: 'answer', sessionid });
    }
    if (path === '/humanaudio') {
      const hasFile = record.files.some((file) => file.field === 'file');
      const hasSession = record.fields?.some(([name]) => name === 'sessionid');
      return json(hasFile && hasSession ? { code: 0, msg: 'ok' } : { code: -1, msg: hasSession ? "'file'" : "'sessionid'" });
    }
    if (record.json === undefined) return json({ code: -1, msg: 'Expecting value: line 1 column 1 (char 0)' });
    return path === '/is_speaking' ? json({ code: 0, data: false }) : json({ code: 0, msg: 'ok' });
  }

  function send(req: http.IncomingMessage, res: http.ServerResponse, answer: Answer): void {
    let body = answer.body;
    const headers: Record<string, string | string[]> = { ...answer.headers, ...corsHeaders(req), Server: SERVER, ...service.extraHeaders };
    if (mode === 'gzip' && body.length > 0) {
      body = gzipSync(body);
      headers['Content-Encoding'] = 'gzip';
      headers.Vary = 'Accept-Encoding';
    }
    writeAnswer(req, res, { status: answer.status, headers, body }, mode, wire);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let record: RecordedRequest;
    try {
      record = await recordRequest(req);
    } catch {
      return; // the client left mid-body
    }
    requests.push(record);
    if (mode === 'hang') return;
    const wait = latencyFor(record, options, latencyMs);
    if (wait > 0) await delay(wait);
    if (answersWithoutHttp(req, mode)) return;
    if (mode === 'error') {
      send(req, res, INTERNAL_ERROR());
    } else if (mode === 'unavailable') {
      send(req, res, UNAVAILABLE());
    } else {
      send(req, res, route(record, req));
    }
  }

  const listener = await listenSimulated(options, handle);

  const service: SimulatedWebrtcService = {
    url: listener.url,
    port: listener.port,
    requests,
    sessions,
    extraHeaders: {},
    setMode(next: string) {
      if (!(WEBRTC_MODES as readonly string[]).includes(next)) throw new Error(`unknown WebRTC service mode "${next}"`);
      listener.followMode(next);
      mode = next as WebrtcMode;
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    lateRequests: listener.lateRequests,
    close: listener.close,
  };
  return service;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
