// `npm run token -- --sub tutor@example.com --role tutor [--expires 3600] [--type refresh]`: prints
// a token shaped exactly like the Flask backend's (auth.md, "The tokens the Flask backend issues"),
// signed with the configured JWT_SECRET_KEY, for curl, the demo, the bench and the tests.
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import dotenv from 'dotenv';
import jwt, { type Algorithm } from 'jsonwebtoken';
import { ConfigError, loadConfig, type Config } from '../config.js';

/** The Flask backend's JWT_ACCESS_TOKEN_EXPIRES: 5 hours. */
export const FLASK_TOKEN_SECONDS = 18_000;

export interface TokenRequest {
  /** The identity (the user's email), under JWT_IDENTITY_CLAIM. */
  sub: string;
  /** The `role` claim the Flask login adds (user.role). */
  role: string;
  /** Seconds from now to `exp`; negative gives an already expired token. */
  expiresIn?: number;
  type?: 'access' | 'refresh';
  /** Issue time in seconds (default now), for tokens issued in the past or the future. */
  now?: number;
}

/**
 * Flask-JWT-Extended 4.7's create_access_token(identity=email, additional_claims={"role": role}):
 * header {"alg","typ"}, then the claims in its order: fresh, iat, jti, type, identity, nbf, exp, role.
 */
export function issueToken(config: Pick<Config, 'jwt'>, request: TokenRequest): string {
  const { secretKey, algorithm, identityClaim } = config.jwt;
  if (secretKey === undefined) throw new ConfigError('JWT_SECRET_KEY', 'not set: tokens can only be signed with the Flask secret');
  const iat = Math.floor(request.now ?? Date.now() / 1000);
  const claims = {
    fresh: false,
    iat,
    jti: randomUUID(),
    type: request.type ?? 'access',
    [identityClaim]: request.sub,
    nbf: iat,
    exp: iat + (request.expiresIn ?? FLASK_TOKEN_SECONDS),
    role: request.role,
  };
  return jwt.sign(claims, secretKey, { algorithm: algorithm as Algorithm });
}

const USAGE = 'usage: npm run token -- --sub <email> --role <role> [--expires <seconds>] [--type access|refresh]';

function requestFromArgs(args: string[]): TokenRequest {
  const { values } = parseArgs({
    args,
    options: { sub: { type: 'string' }, role: { type: 'string' }, expires: { type: 'string' }, type: { type: 'string' } },
  });
  if (!values.sub || !values.role) throw new Error('--sub and --role are required');
  if (values.expires !== undefined && !/^-?\d+$/.test(values.expires)) throw new Error('--expires takes whole seconds');
  if (values.type !== undefined && values.type !== 'access' && values.type !== 'refresh') throw new Error('--type is access or refresh');
  return {
    sub: values.sub,
    role: values.role,
    expiresIn: values.expires === undefined ? undefined : Number(values.expires),
    type: values.type as TokenRequest['type'],
  };
}

function main(): void {
  let request: TokenRequest;
  try {
    request = requestFromArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  dotenv.config({ quiet: true });
  try {
    console.log(issueToken(loadConfig(), request));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`configuration error: ${error.message}`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
