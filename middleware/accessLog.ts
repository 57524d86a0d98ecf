// One access line per request, written when the response is done. The path is logged without its
// query string and no header is logged, so a token can never reach the log.
import type { NextFunction, Request, Response } from 'express';

export function accessLog() {
  return function accessLogMiddleware(req: Request, res: Response, next: NextFunction): void {
    const started = performance.now();
    res.once('close', () => {
      req.log.info('request', {
        method: req.method,
        path: req.originalUrl.split('?')[0],
        status: res.statusCode,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(!res.writableFinished && { aborted: true }),
      });
    });
    next();
  };
}
