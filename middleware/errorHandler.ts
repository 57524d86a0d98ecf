// The one place where failures become responses: HttpError as it says, UpstreamError by the
// common mapping of api.md (per route message), anything else as Flask's 500, logged with its stack.
import type { NextFunction, Request, Response } from 'express';
import { HttpError, UpstreamError } from '../services/errors.js';
import { sendJson } from '../services/flaskJson.js';

/** What a route says when its upstream fails (api.md, "Upstream failures, the common mapping"). */
export interface UpstreamFailureMessages {
  /** 500 {"error", "msg": connect} on a refused, reset or non-HTTP answer. */
  connect: string;
  /** 504 {"msg": timeout}; defaults to "Avatar service timeout". */
  timeout?: string;
  /** The WebRTC pass-through's shape: 502 "Proxy error: <text>" and 504 "Proxy timeout". */
  proxy?: boolean;
}

declare module 'express-serve-static-core' {
  interface Locals {
    upstreamMessages?: UpstreamFailureMessages;
  }
}

/** Route middleware naming the answers for its upstream's failures. */
export function upstreamFailures(messages: UpstreamFailureMessages) {
  return function setUpstreamFailures(_req: Request, res: Response, next: NextFunction): void {
    res.locals.upstreamMessages = messages;
    next();
  };
}

export function notFound(req: Request, _res: Response, next: NextFunction): void {
  next(new HttpError(404, { msg: 'Resource not found', path: req.path }));
}

function upstreamFailure(error: UpstreamError, messages: UpstreamFailureMessages): HttpError {
  switch (error.kind) {
    case 'timeout':
      return new HttpError(504, { msg: messages.proxy ? 'Proxy timeout' : (messages.timeout ?? 'Avatar service timeout') });
    case 'busy':
    case 'circuit_open':
      return new HttpError(503, { msg: 'Avatar service busy, please retry' }, { 'Retry-After': error.text ?? '1' });
    default:
      return messages.proxy
        ? new HttpError(502, { msg: `Proxy error: ${error.message}` })
        : new HttpError(500, { error: error.message, msg: messages.connect });
  }
}

export function errorHandler() {
  return function errorHandlerMiddleware(error: unknown, req: Request, res: Response, _next: NextFunction): void {
    let answer: HttpError;
    if (error instanceof HttpError) {
      answer = error;
    } else if (error instanceof UpstreamError && res.locals.upstreamMessages) {
      answer = upstreamFailure(error, res.locals.upstreamMessages);
      req.log.warn('upstream failure', { upstream: error.upstream, kind: error.kind, error: error.message });
    } else if (isClientError(error)) {
      answer = new HttpError(error.status, { msg: error.status === 413 ? 'Request body too large' : 'Bad request' });
    } else {
      req.log.error('unhandled error', { error });
      answer = new HttpError(500, { msg: 'Internal Server Error' });
    }
    if (res.headersSent) {
      // A pass-through already started: end the connection so the client sees it incomplete.
      res.destroy();
      return;
    }
    res.set(answer.headers);
    sendJson(res, answer.status, answer.body);
  };
}

// body-parser style errors carry the status they want (a JSON/urlencoded body too large, aborted).
function isClientError(error: unknown): error is { status: number } {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && (error as { expose?: boolean }).expose === true;
}
