import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { expect } from 'chai';
import express from 'express';
import winston from 'winston';
import { loadConfig } from '../config.js';
import { errorHandler, upstreamFailures } from '../middleware/errorHandler.js';
import { requestContext } from '../middleware/requestContext.js';
import { Bulkhead } from '../services/bulkhead.js';
import { UpstreamError } from '../services/errors.js';
import { createHttpClient, type HttpClient } from '../services/httpClient.js';
import { testEnv } from './helpers/gateway.js';

const silent = winston.createLogger({ silent: true });

async function rejection(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(UpstreamError);
    return error as UpstreamError;
  }
  throw new Error('expected a rejection');
}

describe('Bulkhead (unit)', () => {
  it('admits up to maxInFlight at once, queues the next ones and hands slots over first come, first served', async () => {
    const bulkhead = new Bulkhead('avatar', { maxInFlight: 2, queueSize: 2, queueTimeoutMs: 5000 });
    const first = await bulkhead.acquire();
    await bulkhead.acquire();
    const order: string[] = [];
    const third = bulkhead.acquire().then((release) => { order.push('third'); return release; });
    const fourth = bulkhead.acquire().then((release) => { order.push('fourth'); return release; });
    expect(bulkhead.state()).to.deep.equal({ in_flight: 2, queued: 2 });

    first();
    first(); // a second release must not free a second slot
    const releaseThird = await third;
    expect(bulkhead.state()).to.deep.equal({ in_flight: 2, queued: 1 });
    releaseThird();
    (await fourth)();
    expect(order).to.deep.equal(['third', 'fourth']);
    expect(bulkhead.state()).to.deep.equal({ in_flight: 1, queued: 0 });
  });

  it('refuses at once with busy and Retry-After when the queue is full', async () => {
    const bulkhead = new Bulkhead('tts', { maxInFlight: 1, queueSize: 1, queueTimeoutMs: 5000 });
    const release = await bulkhead.acquire();
    const queued = bulkhead.acquire();
    const error = await rejection(bulkhead.acquire());
    expect(error.kind).to.equal('busy');
    expect(error.upstream).to.equal('tts');
    expect(error.text).to.equal('1');
    release();
    (await queued)();
    expect(bulkhead.state()).to.deep.equal({ in_flight: 0, queued: 0 });
  });

  it('with a queue of 0, refuses every call beyond maxInFlight', async () => {
    const bulkhead = new Bulkhead('avatar', { maxInFlight: 1, queueSize: 0, queueTimeoutMs: 5000 });
    await bulkhead.acquire();
    expect((await rejection(bulkhead.acquire())).kind).to.equal('busy');
  });

  it('gives up a queued call as busy after the queue timeout, and frees its place', async () => {
    const bulkhead = new Bulkhead('avatar', { maxInFlight: 1, queueSize: 1, queueTimeoutMs: 30 });
    await bulkhead.acquire();
    const error = await rejection(bulkhead.acquire());
    expect(error.kind).to.equal('busy');
    expect(error.message).to.match(/waited 30 ms/);
    expect(bulkhead.state()).to.deep.equal({ in_flight: 1, queued: 0 });
  });

  it('drops a queued call whose caller aborts, without taking a slot', async () => {
    const bulkhead = new Bulkhead('webrtc', { maxInFlight: 1, queueSize: 5, queueTimeoutMs: 5000 });
    const release = await bulkhead.acquire();
    const controller = new AbortController();
    const waiting = bulkhead.acquire(controller.signal);
    expect(bulkhead.state().queued).to.equal(1);
    controller.abort();
    expect((await rejection(waiting)).kind).to.equal('reset');
    expect(bulkhead.state()).to.deep.equal({ in_flight: 1, queued: 0 });
    release();
    expect(bulkhead.state().in_flight).to.equal(0);
    expect((await rejection(bulkhead.acquire(controller.signal))).kind).to.equal('reset');
  });
});

/** An upstream that holds every request until the test answers it. */
class HeldUpstream {
  readonly held: http.ServerResponse[] = [];
  readonly server = http.createServer((_req, res) => {
    this.held.push(res);
    this.server.emit('held');
  });

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async waitForHeld(count: number): Promise<void> {
    while (this.held.length < count) await once(this.server, 'held');
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
  }
}

describe('bulkhead in the HTTP client (real sockets)', () => {
  let upstream: HeldUpstream;
  let client: HttpClient;

  beforeEach(async () => {
    upstream = new HeldUpstream();
    const url = await upstream.start();
    const config = loadConfig(testEnv({
      AVATAR_SERVICE_URL: url,
      UPSTREAM_MAX_IN_FLIGHT: '2',
      UPSTREAM_QUEUE_SIZE: '1',
      UPSTREAM_QUEUE_TIMEOUT_MS: '5000',
    }));
    client = createHttpClient(config, silent);
  });
  afterEach(async () => {
    client.close();
    await upstream.stop();
  });

  it('lets MAX_IN_FLIGHT calls reach the upstream, queues one more, refuses the next at once', async () => {
    const calls = [1, 2, 3].map(() => client.request('avatar', { path: '/avatar/get_avatars', timeoutMs: 5000 }));
    await upstream.waitForHeld(2);
    expect(client.state().avatar).to.include({ in_flight: 2, queued: 1 });
    expect(client.state().tts).to.include({ in_flight: 0, queued: 0 }); // one bulkhead per upstream

    const refused = await rejection(client.request('avatar', { path: '/avatar/get_avatars', timeoutMs: 5000 }));
    expect(refused.kind).to.equal('busy');
    expect(upstream.held).to.have.length(2);

    upstream.held[0].end('{"status":"success","avatars":[]}');
    await upstream.waitForHeld(3); // the queued call goes out once a slot is free
    for (const res of upstream.held.slice(1)) res.end('{}');
    const answers = await Promise.all(calls);
    expect(answers.map((answer) => answer.status)).to.deep.equal([200, 200, 200]);
    expect(client.state().avatar).to.include({ in_flight: 0, queued: 0 });
  });

  it('a stream holds its slot until its body has been read to the end', async () => {
    const answer = client.stream('avatar', { method: 'POST', path: '/avatar/preview', form: { avatar_name: 'a' }, timeoutMs: 5000 });
    await upstream.waitForHeld(1);
    upstream.held[0].writeHead(200, { 'content-type': 'image/png' });
    upstream.held[0].write('first half');
    const { body } = await answer;
    expect(client.state().avatar.in_flight).to.equal(1);
    upstream.held[0].end(' second half');
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).to.equal('first half second half');
    expect(client.state().avatar.in_flight).to.equal(0);
  });

  it('a stream whose client goes away mid-body gives its slot back', async () => {
    const clientGone = new AbortController();
    const answer = client.stream('avatar', { path: '/avatar/preview', timeoutMs: 5000, signal: clientGone.signal });
    await upstream.waitForHeld(1);
    upstream.held[0].writeHead(200);
    upstream.held[0].write('partial');
    const { body } = await answer;
    const closed = new Promise((resolve) => body.once('close', resolve));
    body.on('error', () => { /* the abort itself */ });
    clientGone.abort();
    await closed;
    expect(client.state().avatar.in_flight).to.equal(0);
    expect(client.state().avatar.consecutive_failures).to.equal(0);
  });

  it('a queued call whose client goes away never reaches the upstream', async () => {
    const running = [1, 2].map(() => client.request('avatar', { path: '/x', timeoutMs: 5000 }));
    await upstream.waitForHeld(2);
    const controller = new AbortController();
    const queued = client.request('avatar', { path: '/x', timeoutMs: 5000, signal: controller.signal });
    controller.abort();
    expect((await rejection(queued)).kind).to.equal('reset');
    for (const res of upstream.held) res.end('{}');
    await Promise.all(running);
    expect(upstream.held).to.have.length(2);
    expect(client.state().avatar).to.include({ in_flight: 0, queued: 0, breaker: 'closed', consecutive_failures: 0 });
  });
});

describe('busy answer (errorHandler mapping)', () => {
  it('answers 503 {"msg":"Avatar service busy, please retry"} with Retry-After for any route of that upstream', async () => {
    const app = express();
    app.use(requestContext(silent));
    app.get('/proxy', upstreamFailures({ connect: 'unused', proxy: true }), () => {
      throw new UpstreamError('busy', 'webrtc', 'webrtc service busy: queue full', '1');
    });
    app.get('/list', upstreamFailures({ connect: 'Failed to connect to avatar service' }), () => {
      throw new UpstreamError('busy', 'avatar', 'avatar service busy: queue full', '1');
    });
    app.use(errorHandler());
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      for (const path of ['/list', '/proxy']) {
        const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
        expect(res.status).to.equal(503);
        expect(res.headers.get('retry-after')).to.equal('1');
        expect(res.headers.get('content-type')).to.equal('application/json');
        expect(await res.text()).to.equal('{"msg":"Avatar service busy, please retry"}\n');
      }
    } finally {
      server.close();
    }
  });
});
