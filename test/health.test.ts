// The health routes and the routing rules of api.md ("Health and other routes", strict and
// case-sensitive routing, 404/405) on the real gateway, with tiny local servers as upstreams.
import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { send } from './helpers/http.js';
import { json, startUpstream, type TestUpstream } from './helpers/upstream.js';

describe('health routes (real gateway on 127.0.0.1)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startTestGateway(); });
  after(() => gw.close());

  it('GET /api/ping answers pong', async () => {
    const res = await send(`${gw.url}/api/ping`);
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/plain\b/);
    expect(res.body).to.equal('pong');
  });

  it('GET /api/health answers the liveness body, Flask bytes, without asking any upstream', async () => {
    const res = await send(`${gw.url}/api/health`);
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('application/json');
    expect(res.body).to.equal('{"service":"avatar-gateway","status":"healthy"}\n');
  });

  it('HEAD /api/health answers 200 without a body', async () => {
    const res = await send(`${gw.url}/api/health`, { method: 'HEAD' });
    expect(res.status).to.equal(200);
    expect(res.body).to.equal('');
  });

  it('GET /api/health/detailed reports an unreachable avatar service as degraded (503)', async () => {
    const res = await fetch(`${gw.url}/api/health/detailed`);
    expect(res.status).to.equal(503);
    const body = await res.json();
    expect(body.status).to.equal('degraded');
  });

  describe('wrong methods: 405 with Allow', () => {
    for (const [method, path] of [['POST', '/api/health'], ['DELETE', '/api/ping'], ['PUT', '/api/health/detailed'], ['PATCH', '/api/health']]) {
      it(`${method} ${path}`, async () => {
        const res = await send(`${gw.url}${path}`, { method });
        expect(res.status).to.equal(405);
        expect(res.headers.allow).to.equal('GET, HEAD, OPTIONS');
        expect(res.headers['content-type']).to.equal('application/json');
        expect(res.body).to.equal('{"msg":"Method not allowed"}\n');
      });
    }
  });

  describe('unknown paths: 404 JSON naming the path; routing is strict and case-sensitive', () => {
    for (const path of ['/api/nope', '/api/health/', '/api/ping/', '/api/Health', '/API/health', '/api/health/Detailed', '/api//health', '/', '/health']) {
      it(`GET ${path}`, async () => {
        const res = await send(`${gw.url}${path}`);
        expect(res.status).to.equal(404);
        expect(res.headers['content-type']).to.equal('application/json');
        expect(res.body).to.equal(`{"msg":"Resource not found","path":"${path}"}\n`);
      });
    }

    it('the path is reported without its query string, whatever the method', async () => {
      const res = await send(`${gw.url}/api/nope?token=abc`, { method: 'POST' });
      expect(res.status).to.equal(404);
      expect(res.body).to.equal('{"msg":"Resource not found","path":"/api/nope"}\n');
    });
  });
});

describe('GET /api/health/detailed with local upstreams', () => {
  let avatar: TestUpstream;
  let tts: TestUpstream;
  let webrtc: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    // Any HTTP answer counts as "up": the avatar service has no route at '/' (FastAPI: 404).
    avatar = await startUpstream(json({ detail: 'Not Found' }, 404));
    tts = await startUpstream(json({}));
    webrtc = await startUpstream(json({}));
    gw = await startTestGateway({
      AVATAR_SERVICE_URL: avatar.url,
      TTS_SERVICE_URL: tts.url,
      WEBRTC_SERVICE_URL: webrtc.url,
      UPSTREAM_RETRY_BACKOFF_MS: '1',
    });
  });
  after(async () => {
    await gw.close();
    for (const upstream of [avatar, tts, webrtc]) await upstream.close();
  });

  it('answers 200 "healthy" with every upstream up, each with its latency', async () => {
    const res = await send(`${gw.url}/api/health/detailed`);
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('application/json');
    const body = JSON.parse(res.body);
    expect(body).to.include({ service: 'avatar-gateway', status: 'healthy' });
    expect(Object.keys(body.upstreams)).to.deep.equal(['avatar', 'tts', 'webrtc']);
    for (const probe of Object.values<{ state: string; latency_ms: number }>(body.upstreams)) {
      expect(probe.state).to.equal('up');
      expect(probe.latency_ms).to.be.a('number').and.at.least(0);
    }
    expect(avatar.requests.at(-1)).to.include({ method: 'GET', url: '/' });
  });

  it('answers 503 "degraded" when one upstream is stopped, naming it down without its address', async () => {
    await webrtc.close();
    const res = await send(`${gw.url}/api/health/detailed`);
    expect(res.status).to.equal(503);
    const body = JSON.parse(res.body);
    expect(body).to.include({ service: 'avatar-gateway', status: 'degraded' });
    expect(body.upstreams.avatar.state).to.equal('up');
    expect(body.upstreams.tts.state).to.equal('up');
    expect(body.upstreams.webrtc.state).to.equal('down');
    expect(body.upstreams.webrtc.error).to.be.a('string');
    expect(res.body).not.to.include('127.0.0.1').and.not.to.include(String(webrtc.port));
  });
});

describe('GET /api/health/detailed probes concurrently, each within HEALTH_PROBE_TIMEOUT_MS', () => {
  it('two hanging upstreams cost one probe timeout, not two, and report down', async () => {
    const hanging = await startUpstream(() => { /* never answers */ });
    const gw = await startTestGateway({
      AVATAR_SERVICE_URL: hanging.url,
      TTS_SERVICE_URL: hanging.url,
      WEBRTC_SERVICE_URL: hanging.url,
      HEALTH_PROBE_TIMEOUT_MS: '300',
    });
    try {
      const started = performance.now();
      const res = await send(`${gw.url}/api/health/detailed`);
      const elapsed = performance.now() - started;
      expect(res.status).to.equal(503);
      const body = JSON.parse(res.body);
      expect(body.upstreams.avatar.state).to.equal('down');
      expect(body.upstreams.tts.state).to.equal('down');
      expect(elapsed).to.be.within(280, 900);
    } finally {
      await gw.close();
      await hanging.close();
    }
  });

  it('with TTS_MODEL_INFO_PATH set, the TTS service is not probed', async () => {
    const up = await startUpstream(json({}));
    const gw = await startTestGateway({
      AVATAR_SERVICE_URL: up.url,
      WEBRTC_SERVICE_URL: up.url,
      TTS_MODEL_INFO_PATH: '/nonexistent/model_info.json',
    });
    try {
      const res = await send(`${gw.url}/api/health/detailed`);
      expect(res.status).to.equal(200);
      expect(Object.keys(JSON.parse(res.body).upstreams)).to.deep.equal(['avatar', 'webrtc']);
    } finally {
      await gw.close();
      await up.close();
    }
  });
});
