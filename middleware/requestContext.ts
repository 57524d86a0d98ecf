// Gives each request an id (a sane X-Request-ID from the caller, else a new one), a logger that
// carries it, and an AbortSignal that fires when the client goes away before its answer is sent.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../services/logger.js';

declare module 'express-serve-static-core' {
  interface Request {
    id: string;
    log: Logger;
    /** Aborted when the client disconnects before the response has finished. */
    signal: AbortSignal;
  }
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestContext(logger: Logger) {
  return function requestContextMiddleware(req: Request, res: Response, next: NextFunction): void {
    const offered = req.get('x-request-id');
    req.id = offered && SANE_REQUEST_ID.test(offered) ? offered : randomUUID();
    req.log = logger.child({ requestId: req.id });
    const controller = new AbortController();
    req.signal = controller.signal;
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    res.set('X-Request-ID', req.id);
    next();
  };
}
