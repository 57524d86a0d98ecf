// Identity providers (auth.md, "Identity providers (JWKS)") against a real local JWKS endpoint
// serving generated keys: RS256 and ES256 accepted, a wrong kid or key refused after exactly one
// refetch, a rotation picked up without a restart, issuer and audience checked, the algorithms
// fixed by configuration (an HS256 token made with the public key's bytes is never accepted), and
// an unreachable or overasked key set answered 503 without a crash.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { expect } from 'chai';
import { issueToken } from '../scripts/token.js';
import { bearer, send, signToken, startAuthApp, startJwksServer, type AuthApp, type JwksServer } from './auth.helpers.js';

interface TestKey { kid: string; alg: 'RS256' | 'ES256'; privateKey: KeyObject; publicKey: KeyObject; jwk: object }

function makeKey(kid: string, alg: 'RS256' | 'ES256'): TestKey {
  const { privateKey, publicKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

const now = () => Math.floor(Date.now() / 1000);
const providerClaims = (extra: Record<string, unknown> = {}) => ({ sub: 'tutor@example.com', iat: now(), exp: now() + 300, role: 'tutor', ...extra });

function providerToken(key: TestKey, claims: Record<string, unknown> = providerClaims(), header: Record<string, unknown> = {}): string {
  return signToken({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, claims, key.privateKey);
}

const BAD_SIGNATURE = '{"msg":"Signature verification failed"}\n';
const ALG_NOT_ALLOWED = '{"msg":"The specified alg value is not allowed"}\n';

async function answer(app: AuthApp, token: string): Promise<string> {
  const res = await send(`${app.url}/whoami`, bearer(token));
  return `${res.status} ${res.body}`;
}

describe('auth: identity-provider tokens via JWKS_URI', function () {
  const rsa = makeKey('rsa-1', 'RS256');
  const ec = makeKey('ec-1', 'ES256');
  const rotated = makeKey('rsa-2', 'RS256');
  const stranger = makeKey('rsa-1', 'RS256');
  const publicPem = rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string;
  let jwks: JwksServer;
  before(async () => { jwks = await startJwksServer([rsa.jwk, ec.jwk]); });
  after(() => jwks.close());

  describe('JWKS_URI alone (no JWT_SECRET_KEY)', () => {
    let app: AuthApp;
    before(async () => { app = await startAuthApp({ JWT_SECRET_KEY: undefined, JWKS_URI: jwks.url }); });
    after(() => app.close());

    it('accepts RS256 and ES256 tokens signed with the served keys', async () => {
      expect(await answer(app, providerToken(rsa))).to.equal('200 {"identity":"tutor@example.com"}\n');
      expect(await answer(app, providerToken(ec))).to.equal('200 {"identity":"tutor@example.com"}\n');
    });

    it('keeps the keys it fetched: more requests with a known kid fetch nothing', async () => {
      await answer(app, providerToken(rsa));
      const before = jwks.fetches();
      for (let i = 0; i < 3; i++) expect(await answer(app, providerToken(rsa))).to.match(/^200 /);
      expect(jwks.fetches()).to.equal(before);
    });

    it('refuses an unknown kid after fetching the key set again exactly once', async () => {
      const before = jwks.fetches();
      expect(await answer(app, providerToken({ ...rsa, kid: 'unknown' }))).to.equal(`422 ${BAD_SIGNATURE}`);
      expect(jwks.fetches()).to.equal(before + 1);
    });

    it("refuses a token signed with another key under a served key's kid", async () => {
      expect(await answer(app, providerToken(stranger))).to.equal(`422 ${BAD_SIGNATURE}`);
    });

    it('refuses HS256 (even made with the public key as the secret), none, and Flask tokens: no secret is configured', async () => {
      expect(await answer(app, signToken({ alg: 'HS256', typ: 'JWT', kid: rsa.kid }, providerClaims(), publicPem))).to.equal(`422 ${ALG_NOT_ALLOWED}`);
      expect(await answer(app, signToken({ alg: 'none', typ: 'JWT', kid: rsa.kid }, providerClaims()))).to.equal(`422 ${ALG_NOT_ALLOWED}`);
      expect(await answer(app, signToken({ alg: 'HS256', typ: 'JWT' }, providerClaims(), 'any-secret'))).to.equal(`422 ${ALG_NOT_ALLOWED}`);
    });

    it('refuses an algorithm the key set is not configured for (RS512)', async () => {
      expect(await answer(app, signToken({ alg: 'RS512', typ: 'JWT', kid: rsa.kid }, providerClaims(), rsa.privateKey))).to.equal(`422 ${ALG_NOT_ALLOWED}`);
    });

    it('applies the same failure table to the claims (exp, identity, refresh)', async () => {
      expect(await answer(app, providerToken(rsa, providerClaims({ exp: now() - 1 })))).to.equal('401 {"msg":"Token has expired"}\n');
      const { sub: _sub, ...withoutSub } = providerClaims();
      expect(await answer(app, providerToken(rsa, withoutSub))).to.equal('422 {"msg":"Missing claim: sub"}\n');
      expect(await answer(app, providerToken(rsa, providerClaims({ type: 'refresh' })))).to.equal('422 {"msg":"Only non-refresh tokens are allowed"}\n');
    });

    it('picks up a key rotation without a restart', async () => {
      expect(await answer(app, providerToken(rotated))).to.equal(`422 ${BAD_SIGNATURE}`);
      jwks.serve([rotated.jwk, ec.jwk]);
      try {
        expect(await answer(app, providerToken(rotated))).to.equal('200 {"identity":"tutor@example.com"}\n');
      } finally {
        jwks.serve([rsa.jwk, ec.jwk]);
      }
    });
  });

  describe('JWT_SECRET_KEY and JWKS_URI together, with JWT_ISSUER and JWT_AUDIENCE', () => {
    let app: AuthApp;
    const issuer = 'https://login.example.edu/';
    const audience = 'avatar-gateway';
    const claims = (extra: Record<string, unknown> = {}) => providerClaims({ iss: issuer, aud: audience, ...extra });
    before(async () => { app = await startAuthApp({ JWKS_URI: jwks.url, JWT_ISSUER: issuer, JWT_AUDIENCE: audience }); });
    after(() => app.close());

    it('accepts both the Flask backend\'s tokens (no iss/aud needed) and the provider\'s', async () => {
      expect(await answer(app, issueToken(app.config, { sub: 'student@example.com', role: 'student' }))).to.match(/^200 /);
      expect(await answer(app, providerToken(rsa, claims()))).to.match(/^200 /);
      expect(await answer(app, providerToken(ec, claims({ aud: ['other', audience] })))).to.match(/^200 /);
    });

    it('checks an HS256 token only against the secret: made with the public key, it fails its signature', async () => {
      expect(await answer(app, signToken({ alg: 'HS256', typ: 'JWT', kid: rsa.kid }, claims(), publicPem))).to.equal(`422 ${BAD_SIGNATURE}`);
    });

    for (const [label, extra, msg] of [
      ['no iss', { iss: undefined }, 'Token is missing the \\"iss\\" claim'],
      ['another iss', { iss: 'https://evil.example/' }, 'Invalid issuer'],
      ['no aud', { aud: undefined }, 'Token is missing the \\"aud\\" claim'],
      ['another aud', { aud: 'someone-else' }, 'Invalid audience'],
      ['an aud that is not a string', { aud: 7 }, 'Invalid claim format in token'],
    ] as const) {
      it(`refuses a provider token with ${label}`, async () => {
        expect(await answer(app, providerToken(rsa, JSON.parse(JSON.stringify(claims(extra)))))).to.equal(`422 {"msg":"${msg}"}\n`);
      });
    }

    it('refuses a token without kid when the set holds several keys', async () => {
      expect(await answer(app, providerToken(rsa, claims(), { kid: undefined }))).to.equal(`422 ${BAD_SIGNATURE}`);
    });
  });

  describe('a key set that cannot be consulted', () => {
    it('unreachable: 503, logged, and the app keeps serving Flask tokens', async () => {
      const gone = await startJwksServer([]);
      await gone.close();
      const app = await startAuthApp({ JWKS_URI: gone.url });
      try {
        expect(await answer(app, providerToken(rsa))).to.equal('503 {"msg":"Identity provider unavailable"}\n');
        expect(app.logs()).to.include('JWKS key set unavailable');
        expect(await answer(app, issueToken(app.config, { sub: 's@example.com', role: 'student' }))).to.match(/^200 /);
      } finally {
        await app.close();
      }
    });

    it('fetched at most 10 times a minute, however many unknown kids arrive', async () => {
      const app = await startAuthApp({ JWT_SECRET_KEY: undefined, JWKS_URI: jwks.url });
      try {
        const before = jwks.fetches();
        const answers = [];
        for (let i = 0; i < 12; i++) answers.push(await answer(app, providerToken({ ...rsa, kid: `unknown-${i}` })));
        expect(jwks.fetches() - before).to.equal(10);
        expect(answers.slice(0, 10)).to.deep.equal(Array(10).fill(`422 ${BAD_SIGNATURE}`));
        expect(answers.slice(10)).to.deep.equal(Array(2).fill('503 {"msg":"Identity provider unavailable"}\n'));
      } finally {
        await app.close();
      }
    });
  });
});
