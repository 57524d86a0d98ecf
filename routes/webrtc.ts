// The Flask original's webrtc_proxy view: /api/webrtc/<path> passed through to the WebRTC
// signalling service (api.md, "/api/webrtc/<path>"). Bodies are streamed both ways and never
// decoded; headers are filtered both ways; the upstream host comes from the configuration only.
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Method } from 'got';
import type { AppDeps } from '../app.js';
import type { Config } from '../config.js';
import { isPreflight } from '../middleware/cors.js';
import { upstreamFailures } from '../middleware/errorHandler.js';
import { onlyMethods } from '../middleware/methods.js';
import { toUpstreamError, type UpstreamStream } from '../services/httpClient.js';

type HeaderMap = Record<string, string | string[]>;

const MOUNT = '/api/webrtc';
const FORWARDED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS']);
const WITHOUT_BODY = new Set(['GET', 'HEAD']);

// RFC 9110 7.6.1: meaningful for one connection only. Proxy-* is matched by prefix.
const HOP_BY_HOP = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
// Recomputed or added by the gateway, or the caller's credentials (deliberate difference 6).
// Expect: the gateway's own server already answered the client's 100-continue.
const NOT_FORWARDED = new Set([
  ...HOP_BY_HOP, 'host', 'content-length', 'expect', 'authorization', 'cookie',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id',
]);
// The gateway's own Date and CORS headers apply, once; aiohttp's Server line says nothing useful.
const NOT_RETURNED = new Set([...HOP_BY_HOP, 'date', 'server']);

function isDropped(name: string, dropped: Set<string>, connectionTokens: Set<string>): boolean {
  return dropped.has(name) || connectionTokens.has(name) || name.startsWith('proxy-');
}

/** The headers a message may pass on: without hop-by-hop ones (also those its Connection names). */
function endToEnd(headers: IncomingHttpHeaders, dropped: Set<string>, extraDrop?: (name: string) => boolean): HeaderMap {
  const connection = String(headers.connection ?? '');
  const connectionTokens = new Set(connection.split(',').map((token) => token.trim().toLowerCase()).filter(Boolean));
  const kept: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || isDropped(name, dropped, connectionTokens) || extraDrop?.(name)) continue;
    kept[name] = value;
  }
  return kept;
}

function forwardedRequestHeaders(req: Request, forwardsBody: boolean): HeaderMap {
  const headers = endToEnd(req.headers, NOT_FORWARDED);
  const client = req.socket.remoteAddress;
  const chain = req.get('x-forwarded-for');
  if (client) headers['x-forwarded-for'] = chain ? `${chain}, ${client}` : client;
  headers['x-forwarded-proto'] = req.protocol;
  const host = req.get('host');
  if (host) headers['x-forwarded-host'] = host;
  const bodyLength = req.get('content-length');
  // The body is relayed byte for byte, so a declared length stays true; chunked stays chunked. A
  // length without its body (GET, HEAD) would have the service read the next request on the pooled
  // connection as that body.
  if (forwardsBody && bodyLength !== undefined && req.get('transfer-encoding') === undefined) headers['content-length'] = bodyLength;
  return headers;
}

/**
 * The path and query on the upstream, from the raw request target (percent-encoding kept), or
 * undefined for an absolute-form target, which this route does not serve. A backslash is sent
 * encoded: URL parsing would otherwise turn it into a path separator.
 */
function upstreamPath(originalUrl: string): string | undefined {
  if (!originalUrl.startsWith(`${MOUNT}/`)) return undefined;
  return originalUrl.slice(MOUNT.length).replaceAll('\\', '%5C');
}

function relayHead(upstream: UpstreamStream, res: Response): void {
  res.status(upstream.status);
  const headers = endToEnd(upstream.headers, NOT_RETURNED, (name) => name.startsWith('access-control-'));
  for (const [name, value] of Object.entries(headers)) {
    // Vary is merged with the gateway's own (CORS adds Origin); the rest is the upstream's.
    if (name === 'vary') res.vary(String(value));
    else res.setHeader(name, value);
  }
  // The status line goes out now: a signalling answer is not held back for its first byte.
  res.flushHeaders();
}

/** Resolves when the response is done (or the client gone), rejects if the upstream body fails. */
function relayBody(body: Readable, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    body.once('error', reject);
    res.once('close', resolve);
    body.pipe(res);
  });
}

export function webrtcRoutes(config: Config, deps: AppDeps): Router {
  const router = Router({ strict: true, caseSensitive: true });
  // A preflight and a method the route does not serve are answered like on every other route.
  const methodGuard = onlyMethods('GET', 'POST', 'PUT', 'DELETE');

  async function passThrough(req: Request, res: Response, next: NextFunction): Promise<void> {
    if (isPreflight(req) || !FORWARDED_METHODS.has(req.method)) return methodGuard(req, res, next);
    const path = upstreamPath(req.originalUrl);
    if (path === undefined) return next();

    const method = req.method as Method;
    const declaresBody = req.get('content-length') !== undefined || req.get('transfer-encoding') !== undefined;
    const forwardsBody = declaresBody && !WITHOUT_BODY.has(method);
    let upstream: UpstreamStream;
    try {
      upstream = await deps.httpClient.stream('webrtc', {
        method,
        path,
        timeoutMs: config.timeouts.webrtcMs,
        headers: forwardedRequestHeaders(req, forwardsBody),
        // The client's body goes through a stream of its own: got destroys the stream it was given
        // when a call fails, and destroying `req` would cut the client off before its 502/504.
        body: forwardsBody ? req.pipe(new PassThrough()) : undefined,
        requestId: req.id,
        signal: req.signal,
      });
    } catch (error) {
      if (req.signal.aborted) return; // the client left: nobody to answer
      throw error;
    }

    relayHead(upstream, res);
    try {
      await relayBody(upstream.body, res);
    } catch (error) {
      if (req.signal.aborted) return;
      // Mid-body break or stall: the error handler logs it and cuts the client's connection.
      throw toUpstreamError('webrtc', error);
    }
  }

  // A regular expression, not '/*path': nothing is decoded, so '%zz' in a path is forwarded too.
  // '/api/webrtc/' (empty path) does not match and ends as 404.
  router.all(/^\/.+/, upstreamFailures({ connect: 'Proxy error', proxy: true }), passThrough);
  return router;
}
