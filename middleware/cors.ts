// flask-cors's defaults, which the frontend was built against. The `cors` package differs where a
// browser can tell (204 instead of 200 on preflight, extra Vary, method lists on plain OPTIONS),
// so the few rules are written out here (api.md, "CORS").
import type { NextFunction, Request, Response } from 'express';

const ALL_METHODS = 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT';

export function isPreflight(req: Request): boolean {
  return req.method === 'OPTIONS' && req.get('origin') !== undefined && req.get('access-control-request-method') !== undefined;
}

export function flaskCors(allowedOrigins?: string[]) {
  const allowed = allowedOrigins && new Set(allowedOrigins);
  return function corsMiddleware(req: Request, res: Response, next: NextFunction): void {
    const origin = req.get('origin');
    if (origin === undefined) {
      if (!allowed) res.set('Access-Control-Allow-Origin', '*');
    } else if (!allowed || allowed.has(origin)) {
      res.set('Access-Control-Allow-Origin', origin);
      res.vary('Origin');
      if (isPreflight(req)) {
        res.set('Access-Control-Allow-Methods', ALL_METHODS);
        const requested = req.get('access-control-request-headers');
        if (requested) res.set('Access-Control-Allow-Headers', requested);
      }
    }
    next();
  };
}
