import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { expect } from 'chai';
import express from 'express';
import winston from 'winston';
import { loadConfig } from '../config.js';
import { errorHandler, upstreamFailures } from '../middleware/errorHandler.js';
import { requestContext } from '../middleware/requestContext.js';
import { CircuitBreaker } from '../services/circuitBreaker.js';
import { UpstreamError } from '../services/errors.js';
import { createHttpClient, type HttpClient } from '../services/httpClient.js';
import { outcomeOf } from '../services/upstreamGuard.js';
import { startTestGateway, testEnv } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

const silent = winston.createLogger({ silent: true });

function refusal(action: () => unknown): UpstreamError {
  try {
    action();
  } catch (error) {
    expect(error).to.be.instanceOf(UpstreamError);
    return error as UpstreamError;
  }
  throw new Error('expected the call to be refused');
}

async function rejection(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(UpstreamError);
    return error as UpstreamError;
  }
  throw new Error('expected a rejection');
}

describe('CircuitBreaker (unit, a clock the test moves)', () => {
  let now: number;
  let breaker: CircuitBreaker;
  beforeEach(() => {
    now = 1000;
    breaker = new CircuitBreaker('avatar', { failureThreshold: 3, cooldownMs: 10_000 }, () => now);
  });

  function fail(times: number): void {
    for (let i = 0; i < times; i++) breaker.admit()('failure');
  }

  it('opens after the threshold of consecutive connection failures and refuses at once with Retry-After', () => {
    fail(2);
    expect(breaker.state()).to.deep.equal({ state: 'closed', consecutive_failures: 2 });
    fail(1);
    expect(breaker.state().state).to.equal('open');
    now += 2_500;
    const error = refusal(() => breaker.admit());
    expect(error.kind).to.equal('circuit_open');
    expect(error.upstream).to.equal('avatar');
    expect(error.text).to.equal('8'); // 7.5 s of cool-down left, rounded up
  });

  it('a success in between resets the count; timeouts and abandoned calls do not count', () => {
    fail(2);
    breaker.admit()('success');
    fail(2);
    breaker.admit()('ignored');
    breaker.admit()('ignored');
    expect(breaker.state()).to.deep.equal({ state: 'closed', consecutive_failures: 2 });
  });

  it('after the cool-down lets exactly one probe through; its success closes the circuit', () => {
    fail(3);
    now += 10_000;
    expect(breaker.state().state).to.equal('half_open');
    const settleProbe = breaker.admit();
    const second = refusal(() => breaker.admit());
    expect(second.kind).to.equal('circuit_open');
    expect(second.text).to.equal('1');
    settleProbe('success');
    expect(breaker.state()).to.deep.equal({ state: 'closed', consecutive_failures: 0 });
    breaker.admit()('success');
  });

  it('a failed probe opens the circuit for a whole new cool-down', () => {
    fail(3);
    now += 10_000;
    breaker.admit()('failure');
    expect(breaker.state().state).to.equal('open');
    now += 9_999;
    expect(breaker.state().state).to.equal('open');
    now += 1;
    expect(breaker.state().state).to.equal('half_open');
  });

  it('a probe that ends without a verdict (client gone) lets the next call probe', () => {
    fail(3);
    now += 10_000;
    breaker.admit()('ignored');
    const settleNext = breaker.admit();
    settleNext('success');
    settleNext('failure'); // settling twice changes nothing
    expect(breaker.state()).to.deep.equal({ state: 'closed', consecutive_failures: 0 });
  });

  it('counts connect and reset failures only, never a client that left', () => {
    const failure = (kind: UpstreamError['kind']) => new UpstreamError(kind, 'avatar', 'x');
    expect(outcomeOf(failure('connect'))).to.equal('failure');
    expect(outcomeOf(failure('reset'))).to.equal('failure');
    expect(outcomeOf(failure('timeout'))).to.equal('ignored');
    expect(outcomeOf(failure('too_large'))).to.equal('success');
    expect(outcomeOf(failure('busy'))).to.equal('ignored');
    expect(outcomeOf(new Error('a bug'))).to.equal('ignored');
    expect(outcomeOf(failure('reset'), AbortSignal.abort())).to.equal('ignored');
  });
});

/** An upstream that resets every connection (counting them) or, once healed, answers 200. */
class FlakyUpstream {
  connections = 0;
  healed = false;
  private readonly answering = http.createServer((_req, res) => res.end('{"status":"success","avatars":[]}'));
  readonly server = net.createServer((socket) => {
    this.connections++;
    if (this.healed) this.answering.emit('connection', socket);
    else socket.resetAndDestroy();
  });

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): void {
    this.answering.closeAllConnections();
    this.server.close();
  }
}

describe('circuit breaker in the HTTP client (real sockets)', () => {
  let upstream: FlakyUpstream;
  let client: HttpClient;
  const list = (extra: object = {}) => client.request('avatar', { path: '/avatar/get_avatars', timeoutMs: 2000, ...extra });

  beforeEach(async () => {
    upstream = new FlakyUpstream();
    const url = await upstream.start();
    const config = loadConfig(testEnv({
      AVATAR_SERVICE_URL: url,
      BREAKER_FAILURE_THRESHOLD: '2',
      BREAKER_COOLDOWN_MS: '300',
      UPSTREAM_RETRY_BACKOFF_MS: '0',
    }));
    client = createHttpClient(config, silent);
  });
  afterEach(() => {
    client.close();
    upstream.stop();
  });

  it('opens after repeated resets, then answers circuit_open without calling the upstream, then probes and closes', async () => {
    expect((await rejection(list())).kind).to.equal('reset');
    expect((await rejection(list())).kind).to.equal('reset');
    const reached = upstream.connections;
    expect(reached).to.equal(4); // each GET retried once on a reset: two calls, four connections

    const refused = await rejection(list());
    expect(refused.kind).to.equal('circuit_open');
    expect(refused.text).to.equal('1');
    expect((await rejection(client.stream('avatar', { path: '/x', timeoutMs: 2000 }))).kind).to.equal('circuit_open');
    expect(upstream.connections).to.equal(reached);
    expect(client.state().avatar).to.include({ breaker: 'open', in_flight: 0 });
    expect(client.state().webrtc.breaker).to.equal('closed'); // one breaker per upstream

    upstream.healed = true;
    while (client.state().avatar.breaker === 'open') await new Promise((resolve) => setTimeout(resolve, 50)); // the 300 ms cool-down
    expect((await list()).status).to.equal(200);
    expect(client.state().avatar).to.include({ breaker: 'closed', consecutive_failures: 0 });
  });

  it('a path that would leave the upstream host is refused without counting as a failure', async () => {
    for (let i = 0; i < 3; i++) {
      const error = await rejection(list({ path: '@evil.example/' }));
      expect(error.message).to.match(/refused to leave/);
    }
    expect(upstream.connections).to.equal(0);
    expect(client.state().avatar).to.include({ breaker: 'closed', consecutive_failures: 0 });
  });

  it('timeouts do not open the circuit (a slow GPU box is not a dead one)', async () => {
    const silentUpstream = http.createServer(() => { /* never answers */ });
    silentUpstream.listen(0, '127.0.0.1');
    await once(silentUpstream, 'listening');
    const slow = createHttpClient(loadConfig(testEnv({
      AVATAR_SERVICE_URL: `http://127.0.0.1:${(silentUpstream.address() as AddressInfo).port}`,
      BREAKER_FAILURE_THRESHOLD: '1',
    })), silent);
    try {
      for (let i = 0; i < 2; i++) {
        expect((await rejection(slow.request('avatar', { method: 'POST', path: '/avatar/start', timeoutMs: 50 }))).kind).to.equal('timeout');
      }
      expect(slow.state().avatar.breaker).to.equal('closed');
    } finally {
      slow.close();
      silentUpstream.closeAllConnections();
      silentUpstream.close();
    }
  });
});

describe('circuit open answer', () => {
  it('maps to 503 {"msg":"Avatar service busy, please retry"} with the cool-down left as Retry-After', async () => {
    const app = express();
    app.use(requestContext(silent));
    app.post('/start', upstreamFailures({ connect: 'Error forwarding to avatar service' }), () => {
      throw new UpstreamError('circuit_open', 'avatar', 'avatar service unavailable: circuit open', '7');
    });
    app.use(errorHandler());
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/start`, { method: 'POST' });
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.equal('7');
      expect(await res.text()).to.equal('{"msg":"Avatar service busy, please retry"}\n');
    } finally {
      server.close();
    }
  });

  it('shows in /api/health/detailed: per upstream in_flight, queued and breaker state', async () => {
    // Nothing listens on the test gateway's upstream port: each probe is a refused connection.
    const gw = await startTestGateway({ BREAKER_FAILURE_THRESHOLD: '1', BREAKER_COOLDOWN_MS: '60000' });
    try {
      // The start-up probe runs unawaited: until it has logged, it may still hold a slot.
      await waitFor(() => gw.logs().includes('upstream webrtc is unreachable'), 'the start-up probe');
      const first = await (await fetch(`${gw.url}/api/health/detailed`)).json();
      expect(first.status).to.equal('degraded');
      // The start-up probe may have failed first: either way the circuit is open now.
      expect(first.upstreams.avatar).to.include({ state: 'down', breaker: 'open', in_flight: 0, queued: 0 });
      expect(first.upstreams.avatar.consecutive_failures).to.be.within(1, 2);
      expect(first.upstreams.avatar.error).to.match(/connection refused|circuit open/);

      const res = await fetch(`${gw.url}/api/health/detailed`);
      expect(res.status).to.equal(503);
      const second = await res.json();
      expect(second.upstreams.avatar).to.include({ state: 'down', breaker: 'open' });
      expect(second.upstreams.avatar.error).to.match(/circuit open/);
      expect(JSON.stringify(second)).not.to.contain('127.0.0.1');
    } finally {
      await gw.close();
    }
  });
});
