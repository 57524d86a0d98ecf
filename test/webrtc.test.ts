// /api/webrtc/<path> end to end: the real gateway in front of the simulated signalling service
// (sim/webrtcService.ts), both on 127.0.0.1 (api.md, "/api/webrtc/<path>", and the common mapping).
import { createHash } from 'node:crypto';
import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { startWebrtcService, type SimulatedWebrtcService } from '../sim/webrtcService.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Header names as sent, repeats kept (lower case). */
  names: string[];
  body: Buffer;
  /** False when the connection ended before the response did. */
  complete: boolean;
}

interface RawRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Sent with Transfer-Encoding: chunked, one chunk each. */
  chunks?: Buffer[];
}

// node:http rather than fetch: no decompression, the raw path as written, and a cut connection visible.
function send(base: string, path: string, request: RawRequest = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const headers = { ...request.headers };
    // node:http sends a DELETE or OPTIONS body unframed unless it is told its length.
    if (request.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(request.body));
    const req = http.request({ host: hostname, port, path, method: request.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const done = (complete: boolean) => resolve({
        status: res.statusCode!,
        headers: res.headers,
        names: res.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()),
        body: Buffer.concat(chunks),
        complete,
      });
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(res.complete));
      res.on('error', () => done(false));
    });
    req.on('error', reject);
    for (const chunk of request.chunks ?? []) req.write(chunk);
    req.end(request.body);
  });
}

// The gateway probes each upstream once at start-up (GET <base>/); waiting for that probe keeps it
// out of the records the tests look at.
async function startupProbe(sim: SimulatedWebrtcService, url: string): Promise<void> {
  for (let tries = 0; tries < 200 && !sim.requests.some((r) => r.url === url); tries++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  sim.requests.length = 0;
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const flaskBody = (json: string) => Buffer.from(`${json}\n`);
const OFFER = JSON.stringify({ sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n', type: 'offer' });
const JSON_HEADERS = { 'Content-Type': 'application/json' };

describe('WebRTC pass-through /api/webrtc/<path> (real gateway, simulated signalling service)', () => {
  let sim: SimulatedWebrtcService;
  let gw: TestGateway;

  before(async () => {
    sim = await startWebrtcService({ slowGapMs: 100 });
    gw = await startTestGateway({
      WEBRTC_SERVICE_URL: sim.url,
      WEBRTC_TIMEOUT_MS: '300',
      // Failure rows follow each other here: the breaker must not turn them into 503s.
      BREAKER_FAILURE_THRESHOLD: '1000',
    });
    await startupProbe(sim, '/');
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });
  beforeEach(() => {
    sim.setMode('normal');
    sim.requests.length = 0;
    sim.extraHeaders = {};
  });

  describe('forwarding', () => {
    it('POST /offer: the answer comes back as the service wrote it, the offer arrives byte for byte, no token needed', async () => {
      const res = await send(gw.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.equal('application/json; charset=utf-8');
      expect(res.body.toString()).to.match(/^\{"sdp": "v=0\\r\\n.*", "type": "answer", "sessionid": \d{6}\}$/);
      expect(sim.sessions.has(JSON.parse(res.body.toString()).sessionid)).to.equal(true);

      expect(sim.requests).to.have.length(1);
      const [seen] = sim.requests;
      expect(seen.method).to.equal('POST');
      expect(seen.url).to.equal('/offer');
      expect(seen.body!.toString()).to.equal(OFFER);
      expect(seen.headers['content-length']).to.equal(String(Buffer.byteLength(OFFER)));
      expect(seen.headers['content-type']).to.equal('application/json');
    });

    it('strips Authorization, Cookie and hop-by-hop headers, adds X-Forwarded-* and X-Request-ID', async () => {
      await send(gw.url, '/api/webrtc/human', {
        method: 'POST',
        headers: {
          ...JSON_HEADERS,
          Authorization: 'Bearer secret.token.value',
          Cookie: 'session=abc',
          Connection: 'keep-alive, X-Hop-Named',
          'X-Hop-Named': 'drop me',
          'Keep-Alive': 'timeout=5',
          TE: 'trailers',
          Upgrade: 'h2c',
          'Proxy-Authorization': 'Basic cHJveHk6cHc=',
          'Proxy-Connection': 'keep-alive',
          'X-Forwarded-For': '10.1.2.3',
          'X-Forwarded-Host': 'evil.example',
          'X-Forwarded-Proto': 'https',
          'X-Request-ID': 'webrtc-test-1',
          'X-Request-Time': '1700000000000',
          'User-Agent': 'axios/1.6',
        },
        body: JSON.stringify({ sessionid: 1, text: 'hi', type: 'echo', interrupt: true }),
      });
      expect(sim.requests).to.have.length(1);
      const { headers } = sim.requests[0];
      for (const name of ['authorization', 'cookie', 'x-hop-named', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
        expect(headers, name).not.to.have.property(name);
      }
      const gatewayHost = new URL(gw.url).host;
      expect(headers['x-forwarded-for']).to.equal('10.1.2.3, 127.0.0.1');
      expect(headers['x-forwarded-proto']).to.equal('http');
      expect(headers['x-forwarded-host']).to.equal(gatewayHost);
      expect(headers['x-request-id']).to.equal('webrtc-test-1');
      expect(headers.host).to.equal(new URL(sim.url).host);
      expect(headers['x-request-time']).to.equal('1700000000000');
      expect(headers['user-agent']).to.equal('axios/1.6');
      expect(gw.logs()).not.to.include('secret.token.value');
    });

    it('answers with the upstream headers minus hop-by-hop, Date, Server and Access-Control-*, CORS once', async () => {
      sim.extraHeaders = {
        Connection: 'keep-alive, X-Upstream-Hop',
        'X-Upstream-Hop': 'drop me',
        'Proxy-Authenticate': 'Basic',
        'Access-Control-Expose-Headers': '*',
        Vary: 'Accept-Encoding',
        'Set-Cookie': ['a=1', 'b=2'],
        'X-Kept': 'yes',
      };
      const res = await send(gw.url, '/api/webrtc/human', {
        method: 'POST',
        headers: { ...JSON_HEADERS, Origin: 'http://localhost:3000' },
        body: '{"sessionid": 1, "text": "hi"}',
      });
      expect(res.status).to.equal(200);
      expect(res.body.toString()).to.equal('{"code": 0, "msg": "ok"}');
      const count = (name: string) => res.names.filter((n) => n === name).length;
      expect(count('access-control-allow-origin')).to.equal(1);
      expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
      expect(count('date')).to.equal(1);
      expect(count('connection')).to.equal(1);
      for (const name of ['server', 'access-control-allow-credentials', 'access-control-expose-headers', 'x-upstream-hop', 'proxy-authenticate']) {
        expect(res.headers, name).not.to.have.property(name);
      }
      expect(res.headers['x-kept']).to.equal('yes');
      expect(res.headers['set-cookie']).to.deep.equal(['a=1', 'b=2']);
      expect(res.headers.vary).to.include('Origin').and.to.include('Accept-Encoding');
    });

    it('forwards the query string and the percent-encoded path as received, for GET and POST', async () => {
      const get = await send(gw.url, '/api/webrtc/static/a%20b%2Fc%zz.js?x=1&x=2&y=%E4%BD%A0&timeout=30000');
      expect(get.status).to.equal(404);
      expect(get.body.toString()).to.equal('404: Not Found');
      await send(gw.url, '/api/webrtc/human?debug=1&debug=2&q=a%26b', { method: 'POST', headers: JSON_HEADERS, body: '{}' });
      expect(sim.requests.map((r) => [r.method, r.url])).to.deep.equal([
        ['GET', '/static/a%20b%2Fc%zz.js?x=1&x=2&y=%E4%BD%A0&timeout=30000'],
        ['POST', '/human?debug=1&debug=2&q=a%26b'],
      ]);
    });

    it('forwards HEAD, PUT, DELETE and a plain OPTIONS with their method; the answer passes through', async () => {
      const head = await send(gw.url, '/api/webrtc/client.js', { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.body).to.have.length(0);
      expect(Number(head.headers['content-length'])).to.be.greaterThan(0);
      const put = await send(gw.url, '/api/webrtc/record', { method: 'PUT', headers: JSON_HEADERS, body: '{}' });
      expect(put.status).to.equal(405);
      expect(put.headers.allow).to.equal('POST');
      await send(gw.url, '/api/webrtc/session/1', { method: 'DELETE' });
      const options = await send(gw.url, '/api/webrtc/offer', { method: 'OPTIONS' });
      expect(options.status).to.equal(403);
      expect(options.body.toString()).to.equal('CORS preflight request failed: origin header is not specified in the request');
      expect(sim.requests.map((r) => [r.method, r.url])).to.deep.equal([
        ['HEAD', '/client.js'], ['PUT', '/record'], ['DELETE', '/session/1'], ['OPTIONS', '/offer'],
      ]);
      expect(sim.requests[2].headers['content-length']).to.equal('0');
    });

    it('streams a chunked multipart upload (/humanaudio) through unchanged', async () => {
      const boundary = 'xYzBoundary';
      const audio = Buffer.alloc(300_000, 7);
      const chunks = [
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="sessionid"\r\n\r\n123456\r\n`),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="voice.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
        audio,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ];
      const res = await send(gw.url, '/api/webrtc/humanaudio', {
        method: 'POST',
        headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Transfer-Encoding': 'chunked' },
        chunks,
      });
      expect(res.body.toString()).to.equal('{"code": 0, "msg": "ok"}');
      const [seen] = sim.requests;
      expect(seen.bodySha256).to.equal(sha256(Buffer.concat(chunks)));
      expect(seen.files).to.deep.equal([{ field: 'file', filename: 'voice.wav', contentType: 'audio/wav', size: audio.length, sha256: sha256(audio) }]);
    });

    it('passes a gzip body through untouched both ways (Content-Encoding kept, bytes identical)', async () => {
      const upload = gzipSync(Buffer.from('{"sessionid": 1, "text": "compressed"}'));
      await send(gw.url, '/api/webrtc/human', { method: 'POST', headers: { ...JSON_HEADERS, 'Content-Encoding': 'gzip' }, body: upload });
      expect(sim.requests[0].headers['content-encoding']).to.equal('gzip');
      expect(sim.requests[0].bodySha256).to.equal(sha256(upload));

      sim.setMode('gzip');
      const res = await send(gw.url, '/api/webrtc/human', { method: 'POST', headers: JSON_HEADERS, body: '{"sessionid": 1}' });
      const expected = gzipSync(Buffer.from('{"code": 0, "msg": "ok"}'));
      expect(res.headers['content-encoding']).to.equal('gzip');
      expect(res.headers['content-length']).to.equal(String(expected.length));
      expect(res.body.equals(expected)).to.equal(true);
      expect(gunzipSync(res.body).toString()).to.equal('{"code": 0, "msg": "ok"}');
    });
  });

  describe('the target host cannot be changed', () => {
    const landings: Array<[string, string]> = [
      ['/api/webrtc//evil.example/x', '//evil.example/x'],
      ['/api/webrtc/..%2f..%2fetc%2fpasswd', '/..%2f..%2fetc%2fpasswd'],
      ['/api/webrtc/http://evil.example/x', '/http://evil.example/x'],
      ['/api/webrtc/https:%2F%2Fevil.example', '/https:%2F%2Fevil.example'],
      ['/api/webrtc/@evil.example/x', '/@evil.example/x'],
      ['/api/webrtc/:80@evil.example/x', '/:80@evil.example/x'],
      ['/api/webrtc/\\\\evil.example\\x', '/%5C%5Cevil.example%5Cx'],
      ['/api/webrtc/x%0d%0aHost:%20evil.example', '/x%0d%0aHost:%20evil.example'],
      ['/api/webrtc/../../evil', '/evil'],
    ];
    for (const [path, arrived] of landings) {
      it(`${JSON.stringify(path)} lands on the WebRTC service as ${JSON.stringify(arrived)}`, async () => {
        const res = await send(gw.url, path, { headers: { Host: 'evil.example', 'X-Forwarded-Host': 'evil.example' } });
        expect(res.status).to.equal(404);
        expect(res.body.toString()).to.equal('404: Not Found');
        expect(sim.requests.map((r) => r.url)).to.deep.equal([arrived]);
        expect(sim.requests[0].headers.host).to.equal(new URL(sim.url).host);
      });
    }

    it('an absolute-form request target is not forwarded (404)', async () => {
      const res = await send(gw.url, 'http://evil.example/api/webrtc/offer');
      expect(res.status).to.equal(404);
      expect(sim.requests).to.have.length(0);
    });

    it('dot segments cannot climb out of a base path in WEBRTC_SERVICE_URL', async () => {
      const prefixed = await startTestGateway({ WEBRTC_SERVICE_URL: `${sim.url}/signalling` });
      await startupProbe(sim, '/signalling/');
      try {
        const inside = await send(prefixed.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
        expect(inside.status).to.equal(404);
        expect(sim.requests.map((r) => r.url)).to.deep.equal(['/signalling/offer']);
        const escape = await send(prefixed.url, '/api/webrtc/../admin');
        expect(escape.status).to.equal(502);
        expect(escape.body.equals(flaskBody('{"msg":"Proxy error: refused to leave the upstream host"}'))).to.equal(true);
        expect(sim.requests).to.have.length(1);
      } finally {
        await prefixed.close();
      }
    });
  });

  describe('answered by the gateway itself', () => {
    it('a CORS preflight is answered like every other one and never reaches the service', async () => {
      const res = await send(gw.url, '/api/webrtc/offer', {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-request-time' },
      });
      expect(res.status).to.equal(200);
      expect(res.body).to.have.length(0);
      expect(res.headers['content-type']).to.equal('text/html; charset=utf-8');
      expect(res.headers.allow).to.equal('DELETE, GET, HEAD, OPTIONS, POST, PUT');
      expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
      expect(res.headers['access-control-allow-methods']).to.equal('DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT');
      expect(res.headers['access-control-allow-headers']).to.equal('content-type,x-request-time');
      expect(res.headers).not.to.have.property('access-control-max-age');
      expect(sim.requests).to.have.length(0);
    });

    it('PATCH answers 405 with Allow, nothing forwarded', async () => {
      const res = await send(gw.url, '/api/webrtc/offer', { method: 'PATCH', headers: JSON_HEADERS, body: '{}' });
      expect(res.status).to.equal(405);
      expect(res.headers.allow).to.equal('DELETE, GET, HEAD, OPTIONS, POST, PUT');
      expect(res.body.equals(flaskBody('{"msg":"Method not allowed"}'))).to.equal(true);
      expect(sim.requests).to.have.length(0);
    });

    for (const path of ['/api/webrtc/', '/api/webrtc', '/api/WebRTC/offer']) {
      it(`${path} answers 404, nothing forwarded`, async () => {
        const res = await send(gw.url, path);
        expect(res.status).to.equal(404);
        expect(res.body.equals(flaskBody(`{"msg":"Resource not found","path":"${path}"}`))).to.equal(true);
        expect(sim.requests).to.have.length(0);
      });
    }
  });

  describe('upstream failures (api.md, the WebRTC column of the common mapping)', () => {
    const rows: Array<{ mode: string; method: string; status: number; body: string; attempts: number }> = [
      { mode: 'down', method: 'POST', status: 502, body: '{"msg":"Proxy error: webrtc service: connection refused"}', attempts: 0 },
      { mode: 'reset', method: 'GET', status: 502, body: '{"msg":"Proxy error: webrtc service: connection reset"}', attempts: 2 },
      { mode: 'reset', method: 'POST', status: 502, body: '{"msg":"Proxy error: webrtc service: connection reset"}', attempts: 1 },
      { mode: 'reset', method: 'PUT', status: 502, body: '{"msg":"Proxy error: webrtc service: connection reset"}', attempts: 1 },
      { mode: 'reset', method: 'DELETE', status: 502, body: '{"msg":"Proxy error: webrtc service: connection reset"}', attempts: 1 },
      { mode: 'garbage', method: 'POST', status: 502, body: '{"msg":"Proxy error: webrtc service: invalid HTTP response"}', attempts: 1 },
      { mode: 'hang', method: 'GET', status: 504, body: '{"msg":"Proxy timeout"}', attempts: 1 },
      { mode: 'hang', method: 'POST', status: 504, body: '{"msg":"Proxy timeout"}', attempts: 1 },
    ];
    for (const row of rows) {
      it(`${row.mode}, ${row.method}: ${row.status} ${row.body}, ${row.attempts} upstream request(s)`, async () => {
        sim.setMode(row.mode);
        const res = await send(gw.url, '/api/webrtc/offer', { method: row.method, headers: { ...JSON_HEADERS, Origin: 'http://localhost:3000' }, body: row.method === 'GET' ? undefined : OFFER });
        expect(res.status).to.equal(row.status);
        expect(res.headers['content-type']).to.equal('application/json');
        expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
        expect(res.body.equals(flaskBody(row.body)), res.body.toString()).to.equal(true);
        expect(sim.requests).to.have.length(row.attempts);
      });
    }

    it('an error status is an answer: 500 passed through as is, not retried', async () => {
      sim.setMode('error');
      const res = await send(gw.url, '/api/webrtc/health');
      expect(res.status).to.equal(500);
      expect(res.body.toString()).to.equal('500 Internal Server Error\n\nServer got itself in trouble');
      expect(sim.requests).to.have.length(1);
    });

    it('a 503 is retried once on GET, never on POST; the last answer passes through', async () => {
      sim.setMode('unavailable');
      const get = await send(gw.url, '/api/webrtc/health');
      expect(get.status).to.equal(503);
      expect(get.body.toString()).to.equal('503: Service Unavailable');
      expect(sim.requests).to.have.length(2);
      await send(gw.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
      expect(sim.requests).to.have.length(3);
    });

    it('"reach max session" is an ordinary answer', async () => {
      sim.setMode('full');
      const res = await send(gw.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
      expect(res.status).to.equal(200);
      expect(res.body.toString()).to.equal('{"code": -1, "msg": "reach max session"}');
    });

    it('a body that keeps flowing is not cut by WEBRTC_TIMEOUT_MS (pieces 100 ms apart, 700 ms in all)', async () => {
      sim.setMode('slow');
      const res = await send(gw.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
      expect(res.complete).to.equal(true);
      expect(JSON.parse(res.body.toString()).type).to.equal('answer');
    });

    for (const mode of ['stall', 'break']) {
      it(`a body that ${mode === 'stall' ? 'stalls' : 'breaks'} after the status line aborts the client's connection`, async () => {
        sim.setMode(mode);
        const res = await send(gw.url, '/api/webrtc/offer', { method: 'POST', headers: JSON_HEADERS, body: OFFER });
        expect(res.status).to.equal(200);
        expect(res.complete).to.equal(false);
        expect(res.body.length).to.be.lessThan(Number(res.headers['content-length']));
        // Streamed: what the service sent before it stopped reached the client.
        if (mode === 'stall') expect(res.body.length).to.be.greaterThan(0);
        // The gateway stays up and serves the next request.
        sim.setMode('normal');
        expect((await send(gw.url, '/api/webrtc/health')).status).to.equal(200);
      });
    }
  });
});
