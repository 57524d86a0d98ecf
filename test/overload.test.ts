// Load shedding as the frontend sees it (api.md, "Limits, load and shutdown"): the bulkhead and the
// circuit breaker answer every route of an upstream with the same 503 and Retry-After, without
// calling the upstream. Real gateway and real upstreams on 127.0.0.1.
import type http from 'node:http';
import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { send, type RawRequest } from './helpers/http.js';
import { bearer } from './helpers/tokens.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';

const BUSY = '{"msg":"Avatar service busy, please retry"}\n';
const FRONTEND = 'http://localhost:3000';

interface Route {
  name: string;
  upstream: 'avatar' | 'tts' | 'webrtc';
  path: string;
  /** The path the upstream sees. */
  upstreamPath: string;
  request: RawRequest;
}

const ROUTES: Route[] = [
  { name: 'list', upstream: 'avatar', path: '/api/avatar/list', upstreamPath: '/avatar/get_avatars', request: { headers: bearer('student') } },
  {
    name: 'start', upstream: 'avatar', path: '/api/avatar/start', upstreamPath: '/avatar/start',
    request: { method: 'POST', headers: { ...bearer('student'), 'content-type': 'application/x-www-form-urlencoded' }, body: 'avatar_name=Zoe' },
  },
  { name: 'TTS models', upstream: 'tts', path: '/api/tts/models', upstreamPath: '/tts/models', request: { headers: bearer('student') } },
  {
    name: 'WebRTC offer', upstream: 'webrtc', path: '/api/webrtc/offer', upstreamPath: '/offer',
    request: { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sdp":"v=0","type":"offer"}' },
  },
];

const withOrigin = (request: RawRequest): RawRequest => ({ ...request, headers: { ...request.headers, Origin: FRONTEND } });

function expectBusy(res: Awaited<ReturnType<typeof send>>): void {
  expect(res.status).to.equal(503);
  expect(res.body).to.equal(BUSY);
  expect(res.headers['content-type']).to.equal('application/json');
  expect(res.headers['retry-after']).to.match(/^\d+$/);
  expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
}

/** A success every route passes on as 200. */
function answer(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"success","avatars":[]}');
}

/** Three upstreams that answer the start-up probe (GET /) at once and hold every other request. */
async function holdingUpstreams(held: http.ServerResponse[]): Promise<Record<Route['upstream'], TestUpstream>> {
  const start = () => startUpstream((req, res) => {
    if (req.url === '/') res.end('ok');
    else held.push(res);
  });
  return { avatar: await start(), tts: await start(), webrtc: await start() };
}

describe('overload: 503 busy on every route of a full upstream (real gateway on 127.0.0.1)', () => {
  const held: http.ServerResponse[] = [];
  let upstreams: Record<Route['upstream'], TestUpstream>;
  let gw: TestGateway;

  before(async () => {
    upstreams = await holdingUpstreams(held);
    gw = await startTestGateway({
      AVATAR_SERVICE_URL: upstreams.avatar.url,
      TTS_SERVICE_URL: upstreams.tts.url,
      WEBRTC_SERVICE_URL: upstreams.webrtc.url,
      UPSTREAM_MAX_IN_FLIGHT: '1',
      UPSTREAM_QUEUE_SIZE: '0',
    });
    await waitFor(() => Object.values(upstreams).every((upstream) => upstream.requests.some((r) => r.url === '/')), 'the start-up probes');
  });
  after(async () => {
    for (const res of held) res.destroy();
    await gw.close();
    await Promise.all(Object.values(upstreams).map((upstream) => upstream.close()));
  });

  for (const route of ROUTES) {
    it(`${route.name}: a second call while the first holds the ${route.upstream} service's only slot`, async () => {
      const upstream = upstreams[route.upstream];
      const reached = () => upstream.requests.filter((r) => r.url === route.upstreamPath).length;
      const before = reached();
      const first = send(gw.url + route.path, route.request);
      await waitFor(() => reached() === before + 1, 'the first call to reach the upstream');

      expectBusy(await send(gw.url + route.path, withOrigin(route.request)));
      expect(reached(), 'calls that reached the upstream').to.equal(before + 1);

      // The slot comes back with the answer: the next call goes through.
      answer(held.pop()!);
      expect((await first).status).to.equal(200);
      const next = send(gw.url + route.path, route.request);
      await waitFor(() => reached() === before + 2, 'the next call to reach the upstream');
      answer(held.pop()!);
      expect((await next).status).to.equal(200);
    });
  }
});

describe('overload: the circuit breaker opens on repeated connection failures (real gateway on 127.0.0.1)', () => {
  let dropping: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    // Accepts, reads the request, then drops the connection: a reset, counted by the breaker.
    dropping = await startUpstream((req) => req.socket.destroy());
    gw = await startTestGateway({
      AVATAR_SERVICE_URL: dropping.url,
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_COOLDOWN_MS: '60000',
      UPSTREAM_RETRY_LIMIT: '0',
    });
    await waitFor(() => dropping.requests.some((r) => r.url === '/'), 'the start-up probe');
  });
  after(async () => {
    await gw.close();
    await dropping.close();
  });

  it('answers 503 busy at once, for list and start alike, without calling the avatar service', async () => {
    const list = () => send(`${gw.url}/api/avatar/list`, withOrigin({ headers: bearer('student') }));
    // The probe counted once; the calls before the threshold get the route's own failure answer.
    let failures = 0;
    let answer = await list();
    for (; answer.status === 500 && failures < 5; failures++) answer = await list();
    expect(failures).to.be.within(1, 3);
    expectBusy(answer);

    const calls = dropping.requests.length;
    for (const route of ROUTES.filter((r) => r.upstream === 'avatar')) expectBusy(await send(gw.url + route.path, withOrigin(route.request)));
    expect(dropping.requests.length, 'calls made while the circuit is open').to.equal(calls);
    expect(gw.logs()).to.match(/kind=circuit_open/);
  });
});
