// Tokens shaped like the Flask backend's (auth.md), signed with the test gateway's secret.
import { issueToken } from '../../scripts/token.js';
import { TEST_SECRET } from './gateway.js';

const TEST_JWT = { jwt: { secretKey: TEST_SECRET, algorithm: 'HS256', identityClaim: 'sub', decodeLeewaySeconds: 0 } };

export function tokenFor(role: string, sub = `${role}@example.com`): string {
  return issueToken(TEST_JWT, { sub, role });
}

/** The Authorization header of a user with this role. */
export function bearer(role: string, sub?: string): Record<string, string> {
  return { authorization: `Bearer ${tokenFor(role, sub)}` };
}
