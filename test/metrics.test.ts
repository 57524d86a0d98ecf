import http from 'node:http';
import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { send } from './helpers/http.js';
import { sample } from './helpers/prometheus.js';
import { bearer } from './helpers/tokens.js';
import { startUpstream, json, type TestUpstream } from './helpers/upstream.js';

async function scrape(gw: TestGateway, headers: Record<string, string> = {}): Promise<string> {
  const res = await send(`${gw.url}/metrics`, { headers });
  expect(res.status, res.body).to.equal(200);
  expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
  return res.body;
}

describe('GET /metrics (Prometheus, real gateway on 127.0.0.1)', () => {
  describe('requests, with no upstream listening', () => {
    let gw: TestGateway;
    // One connection failure opens the circuit, so the breaker gauge has something to show.
    before(async () => { gw = await startTestGateway({ BREAKER_FAILURE_THRESHOLD: '1' }); });
    after(() => gw.close());

    it('counts and times requests by route template and status, never by raw path', async () => {
      await send(`${gw.url}/api/ping`);
      await send(`${gw.url}/api/ping`);
      await send(`${gw.url}/api/ping`, { method: 'POST' });
      await send(`${gw.url}/api/avatar-that-is-not/secret-avatar-name`);
      await send(`${gw.url}/api/webrtc/offer/secret-session-id`);
      await send(`${gw.url}/api/avatar/list`, { method: 'OPTIONS', headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'GET' } });
      const text = await scrape(gw);

      expect(sample(text, 'http_requests_total', { method: 'GET', route: '/api/ping', status: '200' })).to.equal(2);
      expect(sample(text, 'http_request_duration_seconds_count', { method: 'GET', route: '/api/ping', status: '200' })).to.equal(2);
      expect(sample(text, 'http_request_duration_seconds_bucket', { route: '/api/ping', status: '200', le: '+Inf' })).to.equal(2);
      expect(sample(text, 'http_requests_total', { method: 'POST', route: '/api/ping', status: '405' })).to.equal(1);
      expect(sample(text, 'http_requests_total', { method: 'GET', route: 'unmatched', status: '404' })).to.equal(1);
      expect(text).not.to.include('secret-avatar-name');
      expect(text).not.to.include('avatar-that-is-not');
      // The WebRTC pass-through matches any path below it: one series for all of them.
      expect(sample(text, 'http_requests_total', { method: 'GET', route: '/api/webrtc/*' })).to.equal(1);
      expect(text).not.to.include('secret-session-id');
      // A CORS preflight counts under the route it asks about.
      expect(sample(text, 'http_requests_total', { method: 'OPTIONS', route: '/api/avatar/list', status: '200' })).to.equal(1);
      // Default process metrics are there too.
      expect(sample(text, 'process_resident_memory_bytes')).to.be.greaterThan(0);
    });

    it('counts refused upstream calls as "connect" and shows the open circuit', async () => {
      await send(`${gw.url}/api/health/detailed`);
      const text = await scrape(gw);
      expect(sample(text, 'upstream_requests_total', { upstream: 'avatar', outcome: 'connect' })).to.be.at.least(1);
      expect(sample(text, 'upstream_requests_total', { upstream: 'avatar', outcome: 'ok' })).to.equal(undefined);
      expect(sample(text, 'upstream_breaker_state', { upstream: 'avatar', state: 'open' })).to.equal(1);
      expect(sample(text, 'upstream_breaker_state', { upstream: 'avatar', state: 'closed' })).to.equal(0);
    });

    it('answers 405 to other methods', async () => {
      const res = await send(`${gw.url}/metrics`, { method: 'POST' });
      expect(res.status).to.equal(405);
      expect(res.body).to.equal('{"msg":"Method not allowed"}\n');
    });
  });

  describe('upstream calls', () => {
    let ok: TestUpstream;
    let failing: TestUpstream;
    let hanging: TestUpstream;
    const held: http.ServerResponse[] = [];
    let gw: TestGateway;

    before(async () => {
      ok = await startUpstream(json({ status: 'ok' }));
      failing = await startUpstream(json({ detail: 'boom' }, 500));
      hanging = await startUpstream((_req, res) => { held.push(res); });
      gw = await startTestGateway({
        AVATAR_SERVICE_URL: ok.url,
        TTS_SERVICE_URL: failing.url,
        WEBRTC_SERVICE_URL: hanging.url,
        HEALTH_PROBE_TIMEOUT_MS: '1000',
        UPSTREAM_RETRY_LIMIT: '0',
      });
    });
    after(async () => {
      await gw.close();
      await Promise.all([ok.close(), failing.close(), hanging.close()]);
    });

    it('labels each call ok, http_error or timeout by upstream, with its duration', async () => {
      await send(`${gw.url}/api/health/detailed`);
      const text = await scrape(gw);
      expect(sample(text, 'upstream_requests_total', { upstream: 'avatar', outcome: 'ok' })).to.be.at.least(1);
      expect(sample(text, 'upstream_requests_total', { upstream: 'tts', outcome: 'http_error' })).to.be.at.least(1);
      expect(sample(text, 'upstream_requests_total', { upstream: 'tts', outcome: 'ok' })).to.equal(undefined);
      expect(sample(text, 'upstream_requests_total', { upstream: 'webrtc', outcome: 'timeout' })).to.be.at.least(1);
      const timedOut = sample(text, 'upstream_request_duration_seconds_sum', { upstream: 'webrtc', outcome: 'timeout' })!;
      const count = sample(text, 'upstream_request_duration_seconds_count', { upstream: 'webrtc', outcome: 'timeout' })!;
      expect(timedOut / count).to.be.at.least(0.9);
    });

    it('shows the pool: the idle kept-alive connection, nothing in use or queued', async () => {
      const text = await scrape(gw);
      expect(sample(text, 'upstream_pool_sockets_idle', { upstream: 'avatar' })).to.be.at.least(1);
      expect(sample(text, 'upstream_pool_sockets_in_use', { upstream: 'avatar' })).to.equal(0);
      expect(sample(text, 'upstream_pool_requests_queued', { upstream: 'avatar' })).to.equal(0);
      expect(sample(text, 'upstream_bulkhead_in_flight', { upstream: 'avatar' })).to.equal(0);
    });

    it('shows requests in flight and the upstream connection they hold', async () => {
      const before = hanging.requests.length;
      const pending = send(`${gw.url}/api/health/detailed`);
      await new Promise<void>((resolve) => {
        const check = () => (hanging.requests.length > before ? resolve() : setImmediate(check));
        check();
      });
      const text = await scrape(gw);
      // The held health check and this scrape.
      expect(sample(text, 'http_requests_in_flight')).to.equal(2);
      expect(sample(text, 'upstream_pool_sockets_in_use', { upstream: 'webrtc' })).to.equal(1);
      expect(sample(text, 'upstream_bulkhead_in_flight', { upstream: 'webrtc' })).to.equal(1);
      for (const res of held) res.end();
      expect((await pending).status).to.be.oneOf([200, 503]);
    });
  });

  describe('an upstream that drops the connection', () => {
    let dropping: TestUpstream;
    let gw: TestGateway;
    before(async () => {
      // Reads the request, then closes the socket without a word: a reset, not a refused connection.
      dropping = await startUpstream((req) => req.socket.destroy());
      gw = await startTestGateway({ AVATAR_SERVICE_URL: dropping.url, UPSTREAM_RETRY_LIMIT: '0' });
    });
    after(async () => {
      await gw.close();
      await dropping.close();
    });

    it('labels the call "reset"', async () => {
      expect((await send(`${gw.url}/api/avatar/list`, { headers: bearer('student') })).status).to.equal(500);
      const text = await scrape(gw);
      expect(sample(text, 'upstream_requests_total', { upstream: 'avatar', outcome: 'reset' })).to.be.at.least(1);
      expect(sample(text, 'upstream_requests_total', { upstream: 'avatar', outcome: 'connect' })).to.equal(undefined);
      expect(sample(text, 'http_requests_total', { method: 'GET', route: '/api/avatar/list', status: '500' })).to.equal(1);
    });
  });

  describe('METRICS_TOKEN', () => {
    let gw: TestGateway;
    before(async () => { gw = await startTestGateway({ METRICS_TOKEN: 'scrape-me-please' }); });
    after(() => gw.close());

    it('refuses a scrape without the bearer token, or with a wrong one', async () => {
      const attempts: Array<Record<string, string>> = [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'scrape-me-please' }];
      for (const headers of attempts) {
        const res = await send(`${gw.url}/metrics`, { headers });
        expect(res.status).to.equal(401);
        expect(res.headers['content-type']).to.equal('application/json');
        expect(res.headers['www-authenticate']).to.equal('Bearer');
        expect(res.body).to.equal('{"msg":"Missing or invalid metrics token"}\n');
        expect(res.body).not.to.include('scrape-me-please');
      }
    });

    it('answers with the token', async () => {
      const text = await scrape(gw, { Authorization: 'Bearer scrape-me-please' });
      expect(sample(text, 'http_requests_total', { route: '/metrics', status: '401' })).to.equal(3);
    });
  });
});
