// Which key checks a token, chosen by configuration from the token's `alg` (auth.md, "Identity
// providers"): JWT_SECRET_KEY for JWT_ALGORITHM, the JWKS_URI key set for RS256/ES256. Each key
// checks only its own algorithms, so an HS256 token is never checked against a public key and an
// algorithm nobody configured (`none` included) is refused before any key is looked at.
import { createSecretKey, type KeyObject } from 'node:crypto';
import jwksRsa from 'jwks-rsa';
import type { Algorithm, JwtHeader } from 'jsonwebtoken';
import type { Config } from '../config.js';
import type { Logger } from './logger.js';
import { KeySetUnavailable, TokenRefused } from './tokenRefusal.js';

export const JWKS_ALGORITHMS: Algorithm[] = ['RS256', 'ES256'];

// A fetch of the key set must not hold requests for long; keys are kept 10 minutes and an unknown
// `kid` (a rotation) fetches the set again, at most 10 times a minute whatever tokens arrive.
const JWKS_FETCH_TIMEOUT_MS = 5_000;
const JWKS_CACHE_MS = 10 * 60_000;
const JWKS_FETCHES_PER_MINUTE = 10;

export type KeySource = 'secret' | 'jwks';

export interface TokenKeys {
  /** Every algorithm some configured key accepts. */
  algorithms: Algorithm[];
  /** The key that verifies this algorithm, if one is configured for it. */
  sourceOf(alg: unknown): KeySource | undefined;
  /** The verification key for a token's header; refuses the token when there is none. */
  keyFor(header: JwtHeader | undefined): Promise<KeyObject | string>;
}

export function createTokenKeys(jwt: Config['jwt'], logger: Logger): TokenKeys {
  const secret = jwt.secretKey === undefined ? undefined : createSecretKey(Buffer.from(jwt.secretKey, 'utf8'));
  const secretAlgorithms = secret ? [jwt.algorithm as Algorithm] : [];
  const keySet = jwt.jwksUri === undefined ? undefined : jwksRsa({
    jwksUri: jwt.jwksUri,
    timeout: JWKS_FETCH_TIMEOUT_MS,
    cache: true,
    cacheMaxAge: JWKS_CACHE_MS,
    rateLimit: true,
    jwksRequestsPerMinute: JWKS_FETCHES_PER_MINUTE,
  });
  const jwksAlgorithms = keySet ? JWKS_ALGORITHMS : [];

  function sourceOf(alg: unknown): KeySource | undefined {
    if (secretAlgorithms.includes(alg as Algorithm)) return 'secret';
    if (jwksAlgorithms.includes(alg as Algorithm)) return 'jwks';
    return undefined;
  }

  async function keyFromSet(kid: unknown): Promise<string> {
    try {
      const key = await keySet!.getSigningKey(kid === undefined ? undefined : String(kid));
      return key.getPublicKey();
    } catch (error) {
      if (error instanceof jwksRsa.SigningKeyNotFoundError) throw new TokenRefused('bad_signature');
      logger.warn('JWKS key set unavailable', { error: (error as Error).message });
      throw new KeySetUnavailable(error);
    }
  }

  return {
    algorithms: [...secretAlgorithms, ...jwksAlgorithms],
    sourceOf,
    async keyFor(header) {
      if (header === undefined) throw new TokenRefused('bad_signature');
      if (!Object.hasOwn(header, 'alg')) throw new TokenRefused('invalid', 'Algorithm not specified');
      const source = sourceOf(header.alg);
      if (source === undefined) throw new TokenRefused('alg_not_allowed');
      return source === 'secret' ? secret! : keyFromSet(header.kid);
    },
  };
}
