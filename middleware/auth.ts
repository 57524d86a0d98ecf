// Flask-JWT-Extended's @jwt_required() and the tutor check, on express-jwt.
// (Foundation version: HS256 and the token's role claim; auth.md's full table lands with issue 3.)
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { expressjwt, UnauthorizedError } from 'express-jwt';
import type { JwtPayload } from 'jsonwebtoken';
import type { Config } from '../config.js';
import { HttpError } from '../services/errors.js';
import type { Logger } from '../services/logger.js';

declare module 'express-serve-static-core' {
  interface Request {
    auth?: JwtPayload;
  }
}

export interface Auth {
  jwtRequired: RequestHandler;
  requireRole(...roles: string[]): RequestHandler;
  /** Releases what the checks hold (the roles database). */
  close(): void;
}

export function createAuth(config: Config, _logger: Logger): Auth {
  const verify = expressjwt({
    secret: config.jwt.secretKey ?? '',
    algorithms: [config.jwt.algorithm as 'HS256'],
  });
  const jwtRequired: RequestHandler = (req, res, next) => {
    verify(req, res, (error?: unknown) => {
      if (error instanceof UnauthorizedError) {
        next(error.code === 'credentials_required'
          ? new HttpError(401, { msg: 'Missing Authorization Header' })
          : new HttpError(422, { msg: error.message }));
        return;
      }
      next(error);
    });
  };
  return {
    jwtRequired,
    close() {},
    requireRole(...roles: string[]) {
      const wanted = new Set(roles.map((role) => role.toLowerCase()));
      return (req: Request, _res: Response, next: NextFunction) => {
        const role = String(req.auth?.role ?? '').toLowerCase();
        next(wanted.has(role) ? undefined : new HttpError(403, { msg: 'Permission denied' }));
      };
    },
  };
}
