// services/httpClient.ts against real local upstreams: what goes over the wire (sockets, retries)
// and what comes back (answers, and failures as UpstreamError kinds).
import http from 'node:http';
import { expect } from 'chai';
import { loadConfig } from '../config.js';
import { UpstreamError } from '../services/errors.js';
import { createHttpClient, parseJson, type HttpClient } from '../services/httpClient.js';
import { captureLogger } from './helpers/logs.js';
import { json, startUpstream, type TestUpstream } from './helpers/upstream.js';

function clientFor(upstream: Pick<TestUpstream, 'url'>, env: Record<string, string> = {}) {
  const config = loadConfig({
    JWT_SECRET_KEY: 'unused-here',
    AVATAR_SERVICE_URL: upstream.url,
    UPSTREAM_RETRY_BACKOFF_MS: '10',
    ...env,
  });
  const { logger, lines } = captureLogger();
  return { client: createHttpClient(config, logger), logs: lines };
}

async function failure(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(UpstreamError);
    return error as UpstreamError;
  }
  throw new Error('expected the call to fail');
}

/** A handler that destroys the connection of the first request and answers the others. */
function resetFirst(): http.RequestListener {
  let seen = 0;
  const answer = json({ status: 'success' });
  return (req, res) => {
    if (++seen === 1) req.socket.destroy();
    else answer(req, res);
  };
}

describe('httpClient (real upstream on 127.0.0.1)', () => {
  const opened: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const item of opened.splice(0)) await item.close();
  });

  async function upstream(handler: http.RequestListener, options?: http.ServerOptions): Promise<TestUpstream> {
    const server = await startUpstream(handler, options);
    opened.push(server);
    return server;
  }

  function client(server: TestUpstream, env?: Record<string, string>): { client: HttpClient; logs: () => Array<Record<string, unknown>> } {
    const made = clientFor(server, env);
    opened.push(made.client);
    return made;
  }

  describe('connection pool', () => {
    it('reuses one keep-alive socket for sequential calls', async () => {
      const server = await upstream(json({ ok: true }));
      const { client: http } = client(server);
      for (let i = 0; i < 5; i++) {
        expect((await http.request('avatar', { path: '/avatar/get_avatars', timeoutMs: 2000 })).status).to.equal(200);
      }
      expect(server.requests).to.have.length(5);
      expect(server.connections()).to.equal(1);
    });

    it('opens a socket per waiting call: 200 concurrent calls are 200 connections, not waves', async () => {
      const total = 200;
      const held: http.ServerResponse[] = [];
      const answer = () => { for (const res of held.splice(0)) res.end('{}'); };
      // Answers nobody until all 200 are waiting at once; a pool capped below 200 would stall here
      // (the safety timer then answers, and the count below fails instead of the test hanging).
      const safety = setTimeout(answer, 5000);
      const server = await upstream((_req, res) => {
        held.push(res);
        if (server.requests.length === total) answer();
      });
      const { client: http } = client(server);
      const results = await Promise.all(Array.from({ length: total }, () => http.request('avatar', { path: '/', timeoutMs: 10_000 })));
      clearTimeout(safety);
      expect(results.every((r) => r.status === 200)).to.equal(true);
      expect(server.connections()).to.equal(total);
      expect(http.agents.avatar.maxSockets).to.equal(8192);
    });

    it('retires a socket idle longer than UPSTREAM_IDLE_SOCKET_MS instead of reusing it', async () => {
      const server = await upstream(json({ ok: true }));
      server.server.keepAliveTimeout = 5000; // uvicorn's: the client must give up first
      const closed = new Promise<number>((resolve) => {
        server.server.once('connection', (socket) => socket.once('close', () => resolve(performance.now())));
      });
      const { client: http } = client(server, { UPSTREAM_IDLE_SOCKET_MS: '100' });
      const started = performance.now();
      await http.request('avatar', { path: '/', timeoutMs: 2000 });
      const idleFor = (await closed) - started;
      expect(idleFor).to.be.within(90, 2000);
      await http.request('avatar', { path: '/', timeoutMs: 2000 });
      expect(server.connections()).to.equal(2);
    });

    it('close() destroys the agents and their pooled sockets', async () => {
      const server = await upstream(json({ ok: true }));
      const { client: http } = client(server);
      const socketClosed = new Promise<void>((resolve) => {
        server.server.once('connection', (socket) => socket.once('close', () => resolve()));
      });
      await http.request('avatar', { path: '/', timeoutMs: 2000 });
      expect(Object.values(http.agents.avatar.freeSockets).flat()).to.have.length(1);
      http.close();
      await socketClosed;
      expect(Object.values(http.agents.avatar.freeSockets).flat()).to.have.length(0);
    });
  });

  describe('retries', () => {
    it('retries a GET that meets a reset, and succeeds', async () => {
      const server = await upstream(resetFirst());
      const { client: http } = client(server);
      const response = await http.request('avatar', { path: '/avatar/get_avatars', timeoutMs: 2000 });
      expect(response.status).to.equal(200);
      expect(parseJson('avatar', response)).to.deep.equal({ status: 'success' });
      expect(server.requests.map((r) => r.method)).to.deep.equal(['GET', 'GET']);
    });

    it('retries a GET even with UPSTREAM_RETRY_BACKOFF_MS=0', async () => {
      const server = await upstream(resetFirst());
      const { client: http } = client(server, { UPSTREAM_RETRY_BACKOFF_MS: '0' });
      expect((await http.request('avatar', { path: '/', timeoutMs: 2000 })).status).to.equal(200);
      expect(server.requests).to.have.length(2);
    });

    it('never retries a POST that meets a reset: the failure is the reset kind', async () => {
      const server = await upstream(resetFirst());
      const { client: http } = client(server);
      const error = await failure(http.request('avatar', { method: 'POST', path: '/avatar/start', form: { avatar_name: 'a' }, timeoutMs: 2000 }));
      expect(error.kind).to.equal('reset');
      expect(error.upstream).to.equal('avatar');
      expect(server.requests).to.have.length(1);
    });

    it('retries a GET answered 503 once, and a POST answered 503 not at all (the status is the answer)', async () => {
      let seen = 0;
      const server = await upstream((_req, res) => {
        res.statusCode = ++seen % 2 === 1 ? 503 : 200;
        res.end('{}');
      });
      const { client: http } = client(server);
      expect((await http.request('avatar', { path: '/', timeoutMs: 2000 })).status).to.equal(200);
      expect(server.requests).to.have.length(2);
      expect((await http.request('avatar', { method: 'POST', path: '/', timeoutMs: 2000 })).status).to.equal(503);
      expect(server.requests).to.have.length(3);
    });

    it('makes at most two requests for a GET that keeps failing', async () => {
      const server = await upstream((req) => req.socket.destroy());
      const { client: http } = client(server);
      expect((await failure(http.request('avatar', { path: '/', timeoutMs: 2000 }))).kind).to.equal('reset');
      expect(server.requests).to.have.length(2);
    });

    it('streams: a GET meeting a reset is retried, a POST is not', async () => {
      const server = await upstream(resetFirst());
      const { client: http } = client(server);
      const answer = await http.stream('avatar', { path: '/offer', timeoutMs: 2000 });
      answer.body.resume();
      expect(answer.status).to.equal(200);
      expect(server.requests).to.have.length(2);

      const again = await upstream(resetFirst());
      const { client: other } = client(again);
      expect((await failure(other.stream('avatar', { method: 'POST', path: '/offer', body: '{}', timeoutMs: 2000 }))).kind).to.equal('reset');
      expect(again.requests).to.have.length(1);
    });
  });

  describe('failures become UpstreamError kinds', () => {
    it('no answer within the call\'s timeout is the timeout kind, in about that time, not retried', async () => {
      const server = await upstream(() => { /* never answers */ });
      const { client: http } = client(server);
      const started = performance.now();
      const error = await failure(http.request('avatar', { path: '/', timeoutMs: 200 }));
      const elapsed = performance.now() - started;
      expect(error.kind).to.equal('timeout');
      expect(error.message).to.equal('avatar service: timed out');
      expect(elapsed).to.be.within(190, 700);
      expect(server.requests).to.have.length(1);
    });

    it('a body that stalls after the headers is the timeout kind too', async () => {
      const server = await upstream((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' });
        res.write('{"status":');
      });
      const { client: http } = client(server);
      expect((await failure(http.request('avatar', { method: 'POST', path: '/', timeoutMs: 200 }))).kind).to.equal('timeout');
    });

    it('a body cut off mid-way is the reset kind, not a short answer', async () => {
      const server = await upstream((req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' });
        res.write('{"status":', () => req.socket.destroy());
      });
      const { client: http } = client(server);
      expect((await failure(http.request('avatar', { method: 'POST', path: '/', timeoutMs: 2000 }))).kind).to.equal('reset');
    });

    it('a refused connection is the connect kind, in words that name no host or port', async () => {
      const server = await upstream(json({}));
      await server.close();
      const { client: http } = client(server);
      const error = await failure(http.request('avatar', { path: '/', timeoutMs: 2000 }));
      expect(error.kind).to.equal('connect');
      expect(error.message).to.equal('avatar service: connection refused');
    });

    it('an HTML body where JSON was expected is the invalid_json kind, keeping the text', async () => {
      const html = '<html><body>502 Bad Gateway</body></html>';
      const server = await upstream((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end(html);
      });
      const { client: http } = client(server);
      const response = await http.request('avatar', { path: '/', timeoutMs: 2000 });
      let error: unknown;
      try {
        parseJson('avatar', response);
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(UpstreamError);
      expect((error as UpstreamError).kind).to.equal('invalid_json');
      expect((error as UpstreamError).text).to.equal(html);
    });

    for (const framing of ['Content-Length', 'chunked'] as const) {
      it(`a body larger than UPSTREAM_MAX_JSON_BYTES is the too_large kind (${framing})`, async () => {
        const big = JSON.stringify({ avatars: 'x'.repeat(5000) });
        const server = await upstream((_req, res) => {
          if (framing === 'Content-Length') res.setHeader('Content-Length', Buffer.byteLength(big));
          res.setHeader('Content-Type', 'application/json');
          res.end(big);
        });
        const { client: http } = client(server, { UPSTREAM_MAX_JSON_BYTES: '1000' });
        const error = await failure(http.request('avatar', { path: '/', timeoutMs: 2000 }));
        expect(error.kind).to.equal('too_large');
        expect(server.requests).to.have.length(1);
      });
    }

    it('a body exactly at UPSTREAM_MAX_JSON_BYTES is read', async () => {
      const server = await upstream((_req, res) => res.end('x'.repeat(1000)));
      const { client: http } = client(server, { UPSTREAM_MAX_JSON_BYTES: '1000' });
      expect((await http.request('avatar', { path: '/', timeoutMs: 2000 })).text).to.have.length(1000);
    });
  });

  describe('each call', () => {
    it('forwards the request id and logs method, upstream, path (no query), status and ms at debug', async () => {
      const server = await upstream(json({}, 404));
      const { client: http, logs } = client(server);
      const response = await http.request('avatar', { path: '/avatar/get_avatars?token=secret', timeoutMs: 2000, requestId: 'req-42' });
      expect(response.status).to.equal(404);
      expect(server.requests[0].headers['x-request-id']).to.equal('req-42');
      expect(server.requests[0].url).to.equal('/avatar/get_avatars?token=secret');
      const line = logs().find((entry) => entry.message === 'upstream call');
      expect(line).to.include({ level: 'debug', upstream: 'avatar', method: 'GET', path: '/avatar/get_avatars', status: 404, requestId: 'req-42' });
      expect(line!.ms).to.be.a('number');
      expect(JSON.stringify(logs())).not.to.include('secret');
    });
  });
});
