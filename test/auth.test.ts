// auth.md against a real running app: every row of the failure table with its exact status and body
// bytes, tokens shaped like the Flask backend's accepted and the same token with one claim or one
// signature byte changed refused, the algorithm rules, Flask-JWT-Extended's finer points (leeway,
// identity claim, the order of its checks), CORS headers on refusals, and no token in the logs.
import { expect } from 'chai';
import { issueToken } from '../scripts/token.js';
import { FLASK_HEADER, bearer, flaskClaims, send, signToken, startAuthApp, type AuthApp } from './auth.helpers.js';
import { TEST_SECRET } from './helpers/gateway.js';

const BODY = {
  missingHeader: '{"msg":"Missing Authorization Header"}\n',
  missingBearer: `{"msg":"Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'"}\n`,
  badHeader: `{"msg":"Bad Authorization header. Expected 'Authorization: Bearer <JWT>'"}\n`,
  notEnoughSegments: '{"msg":"Not enough segments"}\n',
  badSignature: '{"msg":"Signature verification failed"}\n',
  expired: '{"msg":"Token has expired"}\n',
  notYetValid: (claim: string) => `{"msg":"The token is not yet valid (${claim})"}\n`,
  algNotAllowed: '{"msg":"The specified alg value is not allowed"}\n',
  refresh: '{"msg":"Only non-refresh tokens are allowed"}\n',
  missingClaim: (claim: string) => `{"msg":"Missing claim: ${claim}"}\n`,
  msg: (msg: string) => `{"msg":"${msg}"}\n`,
};

const now = () => Math.floor(Date.now() / 1000);

async function expectAnswer(app: AuthApp, headers: Record<string, string>, status: number, body: string): Promise<void> {
  const res = await send(`${app.url}/whoami`, { headers });
  expect({ status: res.status, body: res.body }).to.deep.equal({ status, body });
  expect(res.headers['content-type']).to.equal('application/json');
}

describe('auth: Flask-JWT-Extended tokens on a real app (auth.md)', () => {
  let app: AuthApp;
  let good: string;
  before(async () => {
    app = await startAuthApp();
    good = issueToken(app.config, { sub: 'student@example.com', role: 'student' });
  });
  after(() => app.close());

  const signed = (claims: Record<string, unknown>, header: Record<string, unknown> = FLASK_HEADER, key = TEST_SECRET) =>
    signToken(header, claims, key);

  describe("the failure table, row by row (status and exact body)", () => {
    describe('401 Missing Authorization Header: no header, or a blank one', () => {
      for (const [label, headers] of [
        ['no header', {}],
        ['an empty header', { Authorization: '' }],
        ['spaces only', { Authorization: '   ' }],
        ['commas only', { Authorization: ',,' }],
      ] as const) {
        it(label, () => expectAnswer(app, headers, 401, BODY.missingHeader));
      }
    });

    describe("401 Missing 'Bearer' type: no element starting with Bearer, or two", () => {
      for (const value of ['Token abc', 'bearer abc', 'BEARER abc', 'Basic dXNlcjpwdw==', 'Bearerabc def', 'Bearer a.b.c, Bearer d.e.f']) {
        it(JSON.stringify(value), () => expectAnswer(app, { Authorization: value }, 401, BODY.missingBearer));
      }
    });

    describe('422 Bad Authorization header: Bearer alone, nothing after it, two words after it, an empty element', () => {
      for (const value of ['Bearer', 'Bearer ', 'Bearer abc extra', 'Basic a, , Bearer x', 'Basic a,,Bearer x', 'Bearer x, ,']) {
        it(JSON.stringify(value), () => expectAnswer(app, { Authorization: value }, 422, BODY.badHeader));
      }
      it('a valid token followed by an extra word', () => expectAnswer(app, { Authorization: `Bearer ${good} extra` }, 422, BODY.badHeader));
    });

    describe('422 Not enough segments: not three dot-separated parts', () => {
      for (const token of ['abc', 'abc.def', 'a.b.c.d']) {
        it(token, () => expectAnswer(app, bearer(token).headers, 422, BODY.notEnoughSegments));
      }
      it('a valid token with a fourth part', () => expectAnswer(app, bearer(`${good}.x`).headers, 422, BODY.notEnoughSegments));
    });

    describe('422 with a short reason: three parts that do not decode as a JWT', () => {
      const payload = Buffer.from('{"sub":"a@example.com"}').toString('base64url');
      for (const token of ['x.y.z', `e30.${Buffer.from('not json').toString('base64url')}.c2ln`, `WzFd.${payload}.c2ln`, `e30.${Buffer.from('[1]').toString('base64url')}.c2ln`]) {
        it(token.slice(0, 24), async () => {
          const res = await send(`${app.url}/whoami`, bearer(token));
          expect(res.status).to.equal(422);
          const body = JSON.parse(res.body);
          expect(Object.keys(body)).to.deep.equal(['msg']);
          expect(body.msg).to.be.a('string').and.match(/^Invalid (header|payload) (padding|string)/);
          expect(res.body).to.not.include(token);
        });
      }
    });

    it('422 Signature verification failed: signed with another secret', () => {
      return expectAnswer(app, bearer(signed(flaskClaims(app.config), FLASK_HEADER, 'another-secret')).headers, 422, BODY.badSignature);
    });

    it('401 Token has expired: exp passed', () => {
      return expectAnswer(app, bearer(issueToken(app.config, { sub: 's@example.com', role: 'student', expiresIn: -1 })).headers, 401, BODY.expired);
    });

    it('422 not yet valid (nbf): nbf in the future', () => {
      return expectAnswer(app, bearer(signed({ ...flaskClaims(app.config), nbf: now() + 60 })).headers, 422, BODY.notYetValid('nbf'));
    });

    describe('422 The specified alg value is not allowed', () => {
      it('alg none, without a signature', () => {
        return expectAnswer(app, bearer(signToken({ alg: 'none', typ: 'JWT' }, flaskClaims(app.config))).headers, 422, BODY.algNotAllowed);
      });
      it('alg none, with the HS256 signature kept', () => {
        const [, payload, signature] = good.split('.');
        const header = Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url');
        return expectAnswer(app, bearer(`${header}.${payload}.${signature}`).headers, 422, BODY.algNotAllowed);
      });
      it('HS512 signed with the right secret when HS256 is configured', () => {
        return expectAnswer(app, bearer(signed(flaskClaims(app.config), { alg: 'HS512', typ: 'JWT' })).headers, 422, BODY.algNotAllowed);
      });
      it('RS256 when no key set is configured', () => {
        const token = signToken({ alg: 'RS256', typ: 'JWT' }, flaskClaims(app.config), TEST_SECRET, 'HS256');
        return expectAnswer(app, bearer(token).headers, 422, BODY.algNotAllowed);
      });
    });

    it("422 Only non-refresh tokens are allowed: type refresh", () => {
      const refresh = issueToken(app.config, { sub: 's@example.com', role: 'student', type: 'refresh' });
      return expectAnswer(app, bearer(refresh).headers, 422, BODY.refresh);
    });

    it('422 Missing claim: sub', () => {
      const { sub: _sub, ...claims } = flaskClaims(app.config);
      return expectAnswer(app, bearer(signed(claims)).headers, 422, BODY.missingClaim('sub'));
    });
  });

  describe("tokens shaped like the Flask backend's", () => {
    it('are accepted, and the identity is the sub claim', async () => {
      const res = await send(`${app.url}/whoami`, bearer(good));
      expect(res.status).to.equal(200);
      expect(res.body).to.equal('{"identity":"student@example.com"}\n');
    });

    it('carry the Flask header and claims, in its order', () => {
      const [header, payload] = good.split('.').slice(0, 2).map((part) => Buffer.from(part, 'base64url').toString());
      expect(header).to.equal('{"alg":"HS256","typ":"JWT"}');
      const claims = JSON.parse(payload);
      expect(Object.keys(claims)).to.deep.equal(['fresh', 'iat', 'jti', 'type', 'sub', 'nbf', 'exp', 'role']);
      expect(claims).to.include({ fresh: false, type: 'access', sub: 'student@example.com', role: 'student', nbf: claims.iat, exp: claims.iat + 18000 });
      expect(claims.jti).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    it('the same token with one claim changed (student made tutor) is refused', () => {
      const [header, payload, signature] = good.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      const forged = Buffer.from(JSON.stringify({ ...claims, role: 'tutor' })).toString('base64url');
      return expectAnswer(app, bearer(`${header}.${forged}.${signature}`).headers, 422, BODY.badSignature);
    });

    it('the same token with one signature byte changed is refused', () => {
      const [header, payload, signature] = good.split('.');
      const bytes = Buffer.from(signature, 'base64url');
      bytes[7] ^= 0x01;
      return expectAnswer(app, bearer(`${header}.${payload}.${bytes.toString('base64url')}`).headers, 422, BODY.badSignature);
    });

    it('an HS256 token with an empty signature is refused', () => {
      const [header, payload] = good.split('.');
      return expectAnswer(app, bearer(`${header}.${payload}.`).headers, 422, BODY.badSignature);
    });

    it('without type, jti and fresh (Flask-JWT-Extended fills them in) is accepted', async () => {
      const { type: _t, jti: _j, fresh: _f, ...claims } = flaskClaims(app.config);
      expect((await send(`${app.url}/whoami`, bearer(signed(claims)))).status).to.equal(200);
    });
  });

  describe('the Authorization header, read the way Flask-JWT-Extended reads it', () => {
    for (const [label, value] of [
      ['the Bearer element among others', (t: string) => `Basic dXNlcjpwdw==, Bearer ${t}`],
      ['the Bearer element first, then others', (t: string) => `Bearer ${t}, Basic dXNlcjpwdw==`],
      ['a leading comma', (t: string) => `, Bearer ${t}`],
      ['trailing commas', (t: string) => `Bearer ${t},,`],
      ['a tab between Bearer and the token', (t: string) => `Bearer\t${t}`],
      ['two spaces between Bearer and the token (Python splits on runs of whitespace)', (t: string) => `Bearer  ${t}`],
    ] as const) {
      it(`accepts ${label}`, async () => {
        expect((await send(`${app.url}/whoami`, { headers: { Authorization: value(good) } })).status).to.equal(200);
      });
    }
    it('takes the token from the Authorization header only (not a cookie or the query string)', async () => {
      const res = await send(`${app.url}/whoami?jwt=${good}&access_token=${good}`, { headers: { Cookie: `access_token_cookie=${good}` } });
      expect(res.body).to.equal(BODY.missingHeader);
    });
  });

  describe("PyJWT's claim checks, in its order", () => {
    it('iat in the future is refused before nbf is looked at', () => {
      return expectAnswer(app, bearer(signed({ ...flaskClaims(app.config), iat: now() + 60, nbf: now() + 60 })).headers, 422, BODY.notYetValid('iat'));
    });

    it('an expired token missing its identity claim answers the missing claim (Flask decodes it again)', () => {
      const { sub: _sub, ...claims } = flaskClaims(app.config, { expiresIn: -10 });
      return expectAnswer(app, bearer(signed(claims)).headers, 422, BODY.missingClaim('sub'));
    });

    it('an expired refresh token answers expired (the type is checked after decoding)', () => {
      const refresh = issueToken(app.config, { sub: 's@example.com', role: 'student', type: 'refresh', expiresIn: -10 });
      return expectAnswer(app, bearer(refresh).headers, 401, BODY.expired);
    });

    it('a wrong signature wins over an expired exp', () => {
      return expectAnswer(app, bearer(signed(flaskClaims(app.config, { expiresIn: -10 }), FLASK_HEADER, 'other')).headers, 422, BODY.badSignature);
    });

    it('exp that is not an integer', () => {
      return expectAnswer(app, bearer(signed({ ...flaskClaims(app.config), exp: 'soon' })).headers, 422, BODY.msg('Expiration Time claim (exp) must be an integer.'));
    });

    it('exp as an integer string counts as that integer (Python int())', () => {
      return expectAnswer(app, bearer(signed({ ...flaskClaims(app.config), exp: String(now() - 5) })).headers, 401, BODY.expired);
    });

    it('a sub that is not a string', () => {
      return expectAnswer(app, bearer(signed({ ...flaskClaims(app.config), sub: 42 })).headers, 422, BODY.msg('Subject must be a string'));
    });

    it('a header without alg', () => {
      const token = signToken({ typ: 'JWT' }, flaskClaims(app.config), TEST_SECRET, 'HS256');
      return expectAnswer(app, bearer(token).headers, 422, BODY.msg('Algorithm not specified'));
    });
  });

  describe('refusals carry the CORS headers (flask-cors runs before the token check)', () => {
    it('401 with an Origin: the origin echoed, Vary: Origin', async () => {
      const res = await send(`${app.url}/whoami`, { headers: { Origin: 'http://localhost:3000' } });
      expect(res.status).to.equal(401);
      expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
      expect(res.headers.vary).to.equal('Origin');
    });
    it('422 with an Origin', async () => {
      const res = await send(`${app.url}/whoami`, bearer('abc', { Origin: 'http://localhost:3000' }));
      expect(res.status).to.equal(422);
      expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
    });
    it('401 without an Origin: *', async () => {
      const res = await send(`${app.url}/whoami`);
      expect(res.headers['access-control-allow-origin']).to.equal('*');
    });
  });

  it('never logs a token or the secret', async () => {
    const expired = issueToken(app.config, { sub: 's@example.com', role: 'student', expiresIn: -1 });
    const forged = signed(flaskClaims(app.config), FLASK_HEADER, 'another-secret');
    for (const token of [good, expired, forged]) {
      await send(`${app.url}/whoami?token=${token}`, bearer(token));
      await send(`${app.url}/managers`, bearer(token));
    }
    const logs = app.logs();
    expect(logs).to.include('/whoami');
    for (const secretThing of [good, expired, forged, TEST_SECRET, good.split('.')[2]]) expect(logs).to.not.include(secretThing);
  });
});

describe('auth: settings (JWT_ALGORITHM, JWT_DECODE_LEEWAY, JWT_IDENTITY_CLAIM)', () => {
  it('JWT_ALGORITHM=HS512: HS512 tokens are accepted, HS256 ones refused', async () => {
    const app = await startAuthApp({ JWT_ALGORITHM: 'HS512' });
    try {
      expect((await send(`${app.url}/whoami`, bearer(issueToken(app.config, { sub: 'a@example.com', role: 'student' })))).status).to.equal(200);
      const hs256 = signToken(FLASK_HEADER, flaskClaims(app.config), TEST_SECRET);
      await expectAnswer(app, bearer(hs256).headers, 422, BODY.algNotAllowed);
    } finally {
      await app.close();
    }
  });

  it('JWT_DECODE_LEEWAY=30: exp 10 s ago and nbf 10 s ahead are accepted, exp 60 s ago is not', async () => {
    const app = await startAuthApp({ JWT_DECODE_LEEWAY: '30' });
    try {
      const ok = [
        issueToken(app.config, { sub: 'a@example.com', role: 'student', expiresIn: -10 }),
        signToken(FLASK_HEADER, { ...flaskClaims(app.config), iat: now() + 10, nbf: now() + 10 }, TEST_SECRET),
      ];
      for (const token of ok) expect((await send(`${app.url}/whoami`, bearer(token))).status).to.equal(200);
      await expectAnswer(app, bearer(issueToken(app.config, { sub: 'a@example.com', role: 'student', expiresIn: -60 })).headers, 401, BODY.expired);
    } finally {
      await app.close();
    }
  });

  it('JWT_IDENTITY_CLAIM=email: the identity comes from "email", and a token without it is refused', async () => {
    const app = await startAuthApp({ JWT_IDENTITY_CLAIM: 'email' });
    try {
      const token = issueToken(app.config, { sub: 'a@example.com', role: 'student' });
      expect(JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())).to.have.property('email', 'a@example.com');
      const res = await send(`${app.url}/whoami`, bearer(token));
      expect(res.body).to.equal('{"identity":"a@example.com"}\n');
      const { email: _email, ...claims } = flaskClaims(app.config);
      await expectAnswer(app, bearer(signToken(FLASK_HEADER, { ...claims, sub: 'a@example.com' }, TEST_SECRET)).headers, 422, BODY.missingClaim('email'));
    } finally {
      await app.close();
    }
  });
});
