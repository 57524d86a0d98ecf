// Werkzeug's routing answers for a known path: OPTIONS is answered with the route's methods in
// `Allow`, any other method not served is 405 (api.md, "Health and other routes").
import type { NextFunction, Request, Response } from 'express';
import { HttpError } from '../services/errors.js';

/** The last handler of a route: `router.route(path).get(...).all(onlyMethods('GET'))`. */
export function onlyMethods(...methods: string[]) {
  const served = new Set(methods);
  if (served.has('GET')) served.add('HEAD');
  served.add('OPTIONS');
  const allow = [...served].sort().join(', ');
  return function methodGuard(req: Request, res: Response, next: NextFunction): void {
    if (req.method === 'OPTIONS') {
      res.status(200).set({ Allow: allow, 'Content-Type': 'text/html; charset=utf-8' }).end();
      return;
    }
    next(new HttpError(405, { msg: 'Method not allowed' }, { Allow: allow }));
  };
}
