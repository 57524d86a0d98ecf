import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const FRONTEND = 'http://localhost:3000';

describe('security headers (real gateway on 127.0.0.1)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startTestGateway(); });
  after(() => gw.close());

  function expectProtective(headers: Headers): void {
    expect(headers.get('x-content-type-options')).to.equal('nosniff');
    expect(headers.get('referrer-policy')).to.equal('no-referrer');
    expect(headers.get('x-permitted-cross-domain-policies')).to.equal('none');
    expect(headers.get('x-powered-by')).to.equal(null);
  }

  function expectFrontendFriendly(headers: Headers): void {
    // Another origin may load what the gateway answers (previews in <img>, fetch without CORS).
    expect(headers.get('cross-origin-resource-policy')).to.equal('cross-origin');
    // Nothing that would stop the API or the signalling demo pages (framed by the frontend) from working.
    expect(headers.get('x-frame-options')).to.equal(null);
    expect(headers.get('content-security-policy')).to.equal(null);
    expect(headers.get('cross-origin-embedder-policy')).to.equal(null);
    // Plain HTTP: HSTS is the TLS proxy's business.
    expect(headers.get('strict-transport-security')).to.equal(null);
  }

  it('sets them on a success, without X-Powered-By', async () => {
    const res = await fetch(`${gw.url}/api/health`);
    expect(res.status).to.equal(200);
    expectProtective(res.headers);
    expectFrontendFriendly(res.headers);
  });

  it('sets them on errors too (404, 405)', async () => {
    for (const [method, path, status] of [['GET', '/api/nowhere', 404], ['POST', '/api/health', 405]] as const) {
      const res = await fetch(`${gw.url}${path}`, { method });
      expect(res.status).to.equal(status);
      expectProtective(res.headers);
      expectFrontendFriendly(res.headers);
    }
  });

  it('keeps the frontend\'s cross-origin calls working: preflight and the call itself', async () => {
    const preflight = await fetch(`${gw.url}/api/health`, {
      method: 'OPTIONS',
      headers: { Origin: FRONTEND, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization,x-request-time' },
    });
    expect(preflight.status).to.equal(200);
    expect(preflight.headers.get('access-control-allow-origin')).to.equal(FRONTEND);
    expect(preflight.headers.get('access-control-allow-headers')).to.equal('authorization,x-request-time');
    expectFrontendFriendly(preflight.headers);

    const call = await fetch(`${gw.url}/api/health`, { headers: { Origin: FRONTEND, 'X-Request-Time': '1' } });
    expect(call.status).to.equal(200);
    expect(call.headers.get('access-control-allow-origin')).to.equal(FRONTEND);
    expectFrontendFriendly(call.headers);
    expect(await call.text()).to.equal('{"service":"avatar-gateway","status":"healthy"}\n');
  });
});
