// A fresh secret for the gateway the bench starts, and tokens signed with it by `npm run token`'s
// code (shaped like the Flask backend's, auth.md).
import { randomBytes } from 'node:crypto';
import { issueToken } from '../scripts/token.js';

export interface BenchTokens {
  secret: string;
  tutor: string;
  student: string;
}

export function benchTokens(): BenchTokens {
  const secret = randomBytes(32).toString('hex');
  const jwt = { secretKey: secret, algorithm: 'HS256', decodeLeewaySeconds: 0, identityClaim: 'sub' };
  return {
    secret,
    tutor: issueToken({ jwt }, { sub: 'tutor@example.com', role: 'tutor' }),
    student: issueToken({ jwt }, { sub: 'student@example.com', role: 'student' }),
  };
}
