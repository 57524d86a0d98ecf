// auth.md's failure table in one place: every way a token is refused (the header reader's, the
// PyJWT-style checks', express-jwt's and jsonwebtoken's) becomes the status and `msg` that
// Flask-JWT-Extended's default callbacks answer.
import { UnauthorizedError } from 'express-jwt';
import { HttpError } from './errors.js';

const BEARER_EXPECTED = "Expected 'Authorization: Bearer <JWT>'";

/** Each refusal's status, and its message from the detail the check gives (if any). */
const REFUSALS = {
  missing_header: [401, () => 'Missing Authorization Header'],
  missing_bearer: [401, () => `Missing 'Bearer' type in 'Authorization' header. ${BEARER_EXPECTED}`],
  bad_header: [422, () => `Bad Authorization header. ${BEARER_EXPECTED}`],
  not_enough_segments: [422, () => 'Not enough segments'],
  // "three parts that do not decode as a JWT" and the other claim checks: PyJWT's own wording.
  invalid: [422, (reason: string) => reason],
  bad_signature: [422, () => 'Signature verification failed'],
  expired: [401, () => 'Token has expired'],
  not_yet_valid: [422, (claim: string) => `The token is not yet valid (${claim})`],
  alg_not_allowed: [422, () => 'The specified alg value is not allowed'],
  refresh_token: [422, () => 'Only non-refresh tokens are allowed'],
  missing_claim: [422, (claim: string) => `Missing claim: ${claim}`],
} as const satisfies Record<string, readonly [number, (detail: string) => string]>;

export type Refusal = keyof typeof REFUSALS;

/** A token (or its absence) refused; `detail` fills the message of the rows that take one. */
export class TokenRefused extends Error {
  constructor(readonly refusal: Refusal, readonly detail = '') {
    super(refusal);
    this.name = 'TokenRefused';
  }
}

/** The identity provider's key set could not be consulted (unreachable, rate limit reached). */
export class KeySetUnavailable extends Error {
  constructor(cause: unknown) {
    super('JWKS key set unavailable', { cause });
    this.name = 'KeySetUnavailable';
  }
}

function answer(refusal: Refusal, detail = ''): HttpError {
  const [status, message] = REFUSALS[refusal];
  return new HttpError(status, { msg: message(detail) });
}

/** The answer for an authentication failure, or undefined when `error` is not one (a real bug). */
export function refusalAnswer(error: unknown): HttpError | undefined {
  if (error instanceof TokenRefused) return answer(error.refusal, error.detail);
  // express-jwt wraps what jsonwebtoken throws. The algorithm and the token's shape were checked
  // before it runs, so what is left means the key did not verify this token.
  if (error instanceof UnauthorizedError) return answer('bad_signature');
  if (error instanceof KeySetUnavailable) return new HttpError(503, { msg: 'Identity provider unavailable' });
  return undefined;
}
