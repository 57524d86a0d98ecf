// CORS as flask-cors's defaults answer it (api.md, "CORS"), on the real gateway: simple requests,
// preflights and plain OPTIONS, with and without Origin, with CORS_ORIGINS unset and set.
import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { headerCount, send, type RawResponse } from './helpers/http.js';

const FRONTEND = 'http://localhost:3000';
const ALL_METHODS = 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT';

function preflight(url: string, origin: string, requestHeaders?: string): Promise<RawResponse> {
  return send(url, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'GET',
      ...(requestHeaders && { 'Access-Control-Request-Headers': requestHeaders }),
    },
  });
}

function expectNoAccessControl(res: RawResponse, ...names: string[]): void {
  for (const name of names) expect(res.headers, name).not.to.have.property(name);
}

/** Flask's automatic OPTIONS answer for a GET route. */
function expectOptionsAnswer(res: RawResponse): void {
  expect(res.status).to.equal(200);
  expect(res.body).to.equal('');
  expect(res.headers['content-length']).to.equal('0');
  expect(res.headers['content-type']).to.equal('text/html; charset=utf-8');
  expect(res.headers.allow).to.equal('GET, HEAD, OPTIONS');
}

describe('CORS (real gateway on 127.0.0.1)', () => {
  describe('CORS_ORIGINS unset: every origin', () => {
    let gw: TestGateway;
    before(async () => { gw = await startTestGateway(); });
    after(() => gw.close());

    it('a request without Origin gets Access-Control-Allow-Origin: *, no Vary', async () => {
      const res = await send(`${gw.url}/api/health`);
      expect(res.status).to.equal(200);
      expect(res.headers['access-control-allow-origin']).to.equal('*');
      expect(res.headers.vary ?? '').not.to.match(/origin/i);
      expectNoAccessControl(res, 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-allow-credentials');
    });

    it('a request with Origin gets it echoed once, with Vary: Origin', async () => {
      const res = await send(`${gw.url}/api/ping`, { headers: { Origin: FRONTEND } });
      expect(res.status).to.equal(200);
      expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
      expect(headerCount(res, 'access-control-allow-origin')).to.equal(1);
      expect(res.headers.vary).to.match(/\bOrigin\b/);
      expectNoAccessControl(res, 'access-control-allow-methods', 'access-control-allow-headers');
    });

    it('a preflight: 200, empty text/html, Allow, every method, the requested headers as spelled', async () => {
      const res = await preflight(`${gw.url}/api/health`, FRONTEND, 'authorization,x-request-time');
      expectOptionsAnswer(res);
      expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
      expect(res.headers['access-control-allow-methods']).to.equal(ALL_METHODS);
      expect(res.headers['access-control-allow-headers']).to.equal('authorization,x-request-time');
      expect(res.headers.vary).to.match(/\bOrigin\b/);
    });

    it('a preflight asking for no headers gets no Access-Control-Allow-Headers', async () => {
      const res = await preflight(`${gw.url}/api/ping`, FRONTEND);
      expectOptionsAnswer(res);
      expect(res.headers['access-control-allow-methods']).to.equal(ALL_METHODS);
      expectNoAccessControl(res, 'access-control-allow-headers');
    });

    it('a plain OPTIONS without Origin: the same answer with *, and no method or header lines', async () => {
      const res = await send(`${gw.url}/api/ping`, { method: 'OPTIONS' });
      expectOptionsAnswer(res);
      expect(res.headers['access-control-allow-origin']).to.equal('*');
      expectNoAccessControl(res, 'access-control-allow-methods', 'access-control-allow-headers');
    });

    it('a plain OPTIONS with Origin (no Access-Control-Request-Method): the origin, no method or header lines', async () => {
      const res = await send(`${gw.url}/api/health`, { method: 'OPTIONS', headers: { Origin: FRONTEND, 'Access-Control-Request-Headers': 'authorization' } });
      expectOptionsAnswer(res);
      expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
      expectNoAccessControl(res, 'access-control-allow-methods', 'access-control-allow-headers');
    });

    it('error answers (404, 405) carry the same CORS headers', async () => {
      const notFound = await send(`${gw.url}/api/nope`, { headers: { Origin: FRONTEND } });
      expect(notFound.status).to.equal(404);
      expect(notFound.headers['access-control-allow-origin']).to.equal(FRONTEND);
      expect(notFound.headers.vary).to.match(/\bOrigin\b/);
      const wrongMethod = await send(`${gw.url}/api/health`, { method: 'POST' });
      expect(wrongMethod.status).to.equal(405);
      expect(wrongMethod.headers['access-control-allow-origin']).to.equal('*');
    });
  });

  describe('CORS_ORIGINS set: only the listed origins', () => {
    let gw: TestGateway;
    before(async () => { gw = await startTestGateway({ CORS_ORIGINS: `${FRONTEND}, https://app.example` }); });
    after(() => gw.close());

    it('a listed origin is echoed, with Vary: Origin', async () => {
      for (const origin of [FRONTEND, 'https://app.example']) {
        const res = await send(`${gw.url}/api/ping`, { headers: { Origin: origin } });
        expect(res.headers['access-control-allow-origin']).to.equal(origin);
        expect(res.headers.vary).to.match(/\bOrigin\b/);
      }
    });

    it('another origin gets no Access-Control-Allow-Origin, and the route still answers', async () => {
      const res = await send(`${gw.url}/api/health`, { headers: { Origin: 'https://evil.example' } });
      expect(res.status).to.equal(200);
      expectNoAccessControl(res, 'access-control-allow-origin', 'access-control-allow-methods');
    });

    it('a request without Origin gets no Access-Control-Allow-Origin (no *)', async () => {
      const res = await send(`${gw.url}/api/health`);
      expect(res.status).to.equal(200);
      expectNoAccessControl(res, 'access-control-allow-origin');
    });

    it('a preflight from a listed origin gets the full answer', async () => {
      const res = await preflight(`${gw.url}/api/health`, FRONTEND, 'authorization,x-request-time');
      expectOptionsAnswer(res);
      expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
      expect(res.headers['access-control-allow-methods']).to.equal(ALL_METHODS);
      expect(res.headers['access-control-allow-headers']).to.equal('authorization,x-request-time');
    });

    it('a preflight from another origin gets the OPTIONS answer without any Access-Control-Allow-* line', async () => {
      const res = await preflight(`${gw.url}/api/health`, 'https://evil.example', 'authorization');
      expectOptionsAnswer(res);
      expectNoAccessControl(res, 'access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers');
    });
  });
});
