// Flask-JWT-Extended's @jwt_required() and the tutor check, on express-jwt (auth.md). The token
// is read and checked in Flask-JWT-Extended's order: the header (services/authHeader.ts), PyJWT's
// decoding of the parts and the claims (services/jwtChecks.ts) around express-jwt's algorithm
// and signature check with the configured keys (services/jwtKeys.ts). Every refusal is answered
// by services/tokenRefusal.ts. The token itself is never logged, echoed or kept.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { expressjwt } from 'express-jwt';
import type { Jwt, JwtPayload } from 'jsonwebtoken';
import type { Config } from '../config.js';
import { readBearerToken } from '../services/authHeader.js';
import { HttpError } from '../services/errors.js';
import { checkClaims, checkStructure, type ClaimRules } from '../services/jwtChecks.js';
import { createTokenKeys } from '../services/jwtKeys.js';
import type { Logger } from '../services/logger.js';
import { createRoleSource } from '../services/roles.js';
import { refusalAnswer } from '../services/tokenRefusal.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The verified token's claims, set by jwtRequired. */
    auth?: JwtPayload;
  }
}

export interface Auth {
  jwtRequired: RequestHandler;
  /** After jwtRequired: 403 {"msg":"Permission denied"} unless the caller has one of `roles`. */
  requireRole(...roles: string[]): RequestHandler;
  /** Releases what the checks hold (the roles database). */
  close(): void;
}

/** Throws ConfigError when DATABASE_URL names a database whose user table cannot be read. */
export function createAuth(config: Config, logger: Logger): Auth {
  const keys = createTokenKeys(config.jwt, logger);
  const roles = createRoleSource(config);
  const flaskRules: ClaimRules = { leewaySeconds: config.jwt.decodeLeewaySeconds, identityClaim: config.jwt.identityClaim };
  const providerRules: ClaimRules = { ...flaskRules, issuer: config.jwt.issuer, audience: config.jwt.audience };

  const verify = expressjwt({
    algorithms: keys.algorithms,
    getToken(req) {
      const token = readBearerToken(req.headers.authorization);
      checkStructure(token);
      return token;
    },
    secret: (_req, token) => keys.keyFor(token?.header),
    // exp and nbf are PyJWT's business (checkClaims): its order, its leeway, its messages.
    ignoreExpiration: true,
    ignoreNotBefore: true,
    // express-jwt's hook after a good signature, with header and payload: where PyJWT checks the
    // claims. Nothing is ever revoked (the Flask original has no blocklist).
    isRevoked(_req, token) {
      const { header, payload } = token as Jwt;
      const rules = keys.sourceOf(header.alg) === 'jwks' ? providerRules : flaskRules;
      checkClaims(payload as Record<string, unknown>, rules, Date.now() / 1000);
      return false;
    },
  });

  const jwtRequired: RequestHandler = (req, res, next) => {
    verify(req, res, (error?: unknown) => next(error === undefined ? undefined : (refusalAnswer(error) ?? error)));
  };

  function requireRole(...wanted: string[]): RequestHandler {
    const allowed = new Set(wanted.map((role) => role.toLowerCase()));
    return function roleCheck(req: Request, _res: Response, next: NextFunction): void {
      // No verified token (jwtRequired not in front, or a preflight it let through) is no role.
      const role = req.auth && roles.roleOf(req.auth);
      next(role !== undefined && allowed.has(role) ? undefined : new HttpError(403, { msg: 'Permission denied' }));
    };
  }

  return { jwtRequired, requireRole, close: () => roles.close() };
}
