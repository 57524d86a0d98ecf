// The checks PyJWT 2.10 makes around the signature, in its order, with its messages, so a token is
// refused with the same `msg` the Flask original gave (auth.md, "Failures"). jsonwebtoken (through
// express-jwt) checks the algorithm and the signature between checkStructure and checkClaims.
import { TokenRefused } from './tokenRefusal.js';

export interface ClaimRules {
  /** JWT_DECODE_LEEWAY: seconds of clock skew allowed on iat, nbf and exp. */
  leewaySeconds: number;
  /** JWT_IDENTITY_CLAIM: the claim that must be present (Flask-JWT-Extended's "Missing claim"). */
  identityClaim: string;
  /** Required `iss` and `aud`: set for identity-provider tokens only (the Flask backend sets neither). */
  issuer?: string;
  audience?: string;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const NOT_BASE64 = /[^A-Za-z0-9+/_-]/g;

// PyJWT pads a segment and decodes it leniently (characters outside the alphabet are skipped);
// only a length one past a multiple of four cannot be decoded.
function decodeSegment(segment: string, part: 'header' | 'payload' | 'crypto'): Buffer {
  const data = segment.replace(NOT_BASE64, '');
  if (data.length % 4 === 1) throw new TokenRefused('invalid', `Invalid ${part} padding`);
  return Buffer.from(data, 'base64url');
}

function parseObject(bytes: Buffer, part: 'header' | 'payload'): void {
  let value: unknown;
  try {
    value = JSON.parse(STRICT_UTF8.decode(bytes));
  } catch {
    // Python's json message would quote a position; JavaScript's quotes the text, which is part of
    // the token and must not be echoed.
    throw new TokenRefused('invalid', `Invalid ${part} string: not valid JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenRefused('invalid', `Invalid ${part} string: must be a json object`);
  }
}

/** PyJWT's decoding of the three parts, before anything is verified. */
export function checkStructure(token: string): void {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenRefused('not_enough_segments');
  const [header, payload, signature] = parts;
  parseObject(decodeSegment(header, 'header'), 'header');
  const payloadBytes = decodeSegment(payload, 'payload');
  decodeSegment(signature, 'crypto');
  parseObject(payloadBytes, 'payload');
}

// Python's int() on a claim: numbers truncate, booleans count, integer strings parse.
function pythonInt(value: unknown, message: string): number {
  if (typeof value === 'boolean') return Number(value);
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'string' && /^\s*[+-]?\d+(?:_\d+)*\s*$/.test(value)) return Number(value.replace(/_/g, ''));
  throw new TokenRefused('invalid', message);
}

function checkAudience(aud: unknown, audience: string): void {
  if (!aud || (Array.isArray(aud) && aud.length === 0)) throw new TokenRefused('invalid', 'Token is missing the "aud" claim');
  const claimed = typeof aud === 'string' ? [aud] : aud;
  if (!Array.isArray(claimed) || claimed.some((item) => typeof item !== 'string')) {
    throw new TokenRefused('invalid', 'Invalid claim format in token');
  }
  if (!claimed.includes(audience)) throw new TokenRefused('invalid', 'Invalid audience');
}

/**
 * The claims of a token whose signature is good, checked as PyJWT and Flask-JWT-Extended do. `now`
 * is in seconds. An expired token is reported only after the other checks: Flask-JWT-Extended
 * decodes an expired token a second time without the exp check, and that decode's error wins.
 */
export function checkClaims(claims: Record<string, unknown>, rules: ClaimRules, now: number): void {
  const has = (name: string) => Object.hasOwn(claims, name);
  const leeway = rules.leewaySeconds;
  let expired = false;

  if (has('iat') && pythonInt(claims.iat, 'Issued At claim (iat) must be an integer.') > now + leeway) {
    throw new TokenRefused('not_yet_valid', 'iat');
  }
  if (has('nbf') && pythonInt(claims.nbf, 'Not Before claim (nbf) must be an integer.') > now + leeway) {
    throw new TokenRefused('not_yet_valid', 'nbf');
  }
  if (has('exp')) expired = pythonInt(claims.exp, 'Expiration Time claim (exp) must be an integer.') <= now - leeway;
  if (rules.issuer !== undefined) {
    if (!has('iss')) throw new TokenRefused('invalid', 'Token is missing the "iss" claim');
    if (claims.iss !== rules.issuer) throw new TokenRefused('invalid', 'Invalid issuer');
  }
  if (rules.audience !== undefined) checkAudience(claims.aud, rules.audience);
  if (has('sub') && typeof claims.sub !== 'string') throw new TokenRefused('invalid', 'Subject must be a string');
  if (has('jti') && typeof claims.jti !== 'string') throw new TokenRefused('invalid', 'JWT ID must be a string');
  if (!has(rules.identityClaim)) throw new TokenRefused('missing_claim', rules.identityClaim);
  if (expired) throw new TokenRefused('expired');
  if (claims.type === 'refresh') throw new TokenRefused('refresh_token');
}
