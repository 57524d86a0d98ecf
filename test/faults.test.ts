// The upstream fault matrix (issue 6, item 1): every route of the gateway against every way an
// upstream can fail on the wire (sim/simServer.ts, TRANSPORT_MODES), real gateway and simulated
// services on 127.0.0.1. Each cell asserts api.md's answer (status and body bytes, or a cut
// response for a pass-through that had started), how many requests reached the upstream (the
// retry rule), that no socket to an upstream is left in use, and that the route works again once
// the upstream does. docs/reliability.md's fault table is this matrix.
import { expect } from 'chai';
import type http from 'node:http';
import { startAvatarService, type SimulatedAvatarService } from '../sim/avatarService.js';
import type { SimulatedService } from '../sim/types.js';
import { startTtsService, type SimulatedTtsService } from '../sim/ttsService.js';
import { startWebrtcService, type SimulatedWebrtcService } from '../sim/webrtcService.js';
import type { UpstreamName } from '../services/errors.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { send, type RawRequest, type RawResponse } from './helpers/http.js';
import { bearer } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

const TIMEOUT_MS = 300;
const MAX_JSON_BYTES = 64 * 1024;
const HUGE_BODY_BYTES = 4 * MAX_JSON_BYTES;
/** A client still waiting this long after its route's timeout calls it a hang. */
const HANG_MS = 10 * TIMEOUT_MS;

const flask = (json: string) => `${json}\n`;

interface Sims {
  avatar: SimulatedAvatarService;
  tts: SimulatedTtsService;
  webrtc: SimulatedWebrtcService;
}

async function startSims(keepAliveTimeoutMs?: number): Promise<Sims> {
  const options = { keepAliveTimeoutMs, hugeBodyBytes: HUGE_BODY_BYTES };
  return { avatar: await startAvatarService(options), tts: await startTtsService(options), webrtc: await startWebrtcService(options) };
}

function gatewayEnv(sims: Sims, env: Record<string, string> = {}): Record<string, string> {
  return {
    AVATAR_SERVICE_URL: sims.avatar.url,
    TTS_SERVICE_URL: sims.tts.url,
    WEBRTC_SERVICE_URL: sims.webrtc.url,
    UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
    AVATAR_START_TIMEOUT_MS: String(TIMEOUT_MS),
    AVATAR_ADD_TIMEOUT_MS: String(TIMEOUT_MS),
    WEBRTC_TIMEOUT_MS: String(TIMEOUT_MS),
    UPSTREAM_MAX_JSON_BYTES: String(MAX_JSON_BYTES),
    UPSTREAM_RETRY_BACKOFF_MS: '0',
    // Failure cells follow each other: the breaker must not turn them into 503s.
    BREAKER_FAILURE_THRESHOLD: '100000',
    LOG_LEVEL: 'warn',
    ...env,
  };
}

// The gateway probes each upstream once at start-up (GET <base>/): wait for it, then forget it.
async function startupProbes(sims: Sims): Promise<void> {
  await waitFor(() => Object.values(sims).every((sim: SimulatedService) => sim.requests.some((r) => r.url === '/')), 'the start-up probes');
  for (const sim of Object.values(sims) as SimulatedService[]) sim.requests.length = 0;
}

const FACE_VIDEO = Buffer.alloc(32 * 1024, 7);
const BOUNDARY = 'faults-test-boundary';
const ADD_BODY = Buffer.concat([
  Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nnewcomer\r\n`),
  Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="prompt_face"; filename="face.mp4"\r\nContent-Type: video/mp4\r\n\r\n`),
  FACE_VIDEO,
  Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
]);
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

interface Route {
  name: string;
  upstream: UpstreamName;
  method: 'GET' | 'POST';
  path: string;
  request: RawRequest;
  /** How a pass-through meets a fault: not at all (JSON read whole), headers with the first byte, or at once. */
  streamed: 'no' | 'first-byte' | 'at-once';
  /** The route's answers to the common mapping's failure and timeout rows (api.md). */
  failure(text: string): [number, string];
  timeout: [number, string];
  /** The route's own answers to 5xx statuses: sim mode, then status, body, upstream requests. */
  errorStatuses: Array<{ mode: string; status: number; body: string; attempts: number }>;
  /** Puts the simulated service in the state the route's normal answer needs. */
  prepare?(sims: Sims): void;
}

const avatarFailure = (msg: string) => (text: string): [number, string] => [500, flask(`{"error":"avatar service: ${text}","msg":"${msg}"}`)];
const proxyFailure = (text: string): [number, string] => [502, flask(`{"msg":"Proxy error: webrtc service: ${text}"}`)];
const AVATAR_TIMEOUT: [number, string] = [504, flask('{"msg":"Avatar service timeout"}')];
const GPU_BUSY = '{"detail":"GPU busy, try again later"}';
const GPU_BUSY_TEXT = '{\\"detail\\":\\"GPU busy, try again later\\"}';

/** What an action route (add, delete, start) answers to FastAPI's 503 and to uvicorn's text 500. */
function actionStatuses(failed: string, invalidJson: string): Route['errorStatuses'] {
  return [
    { mode: 'status-503', status: 400, body: flask(`{"detail":${GPU_BUSY},"msg":"${failed}"}`), attempts: 1 },
    { mode: 'error', status: 500, body: flask(`{"msg":"${invalidJson}","raw":"Internal Server Error"}`), attempts: 1 },
  ];
}

const ROUTES: Route[] = [
  {
    name: 'list', upstream: 'avatar', method: 'GET', path: '/api/avatar/list', request: { headers: bearer('student') },
    streamed: 'no', failure: avatarFailure('Failed to connect to avatar service'), timeout: AVATAR_TIMEOUT,
    errorStatuses: [
      { mode: 'status-503', status: 503, body: GPU_BUSY, attempts: 2 },
      { mode: 'error', status: 500, body: flask(`{"error":"${jsonParseError('Internal Server Error')}","msg":"Failed to connect to avatar service"}`), attempts: 1 },
    ],
  },
  {
    name: 'preview', upstream: 'avatar', method: 'POST', path: '/api/avatar/preview',
    request: { headers: { ...bearer('student'), ...FORM }, body: 'avatar_name=bob_math' },
    streamed: 'first-byte', failure: avatarFailure('Error forwarding to avatar service'), timeout: AVATAR_TIMEOUT,
    errorStatuses: [
      { mode: 'status-503', status: 503, body: flask(`{"detail":"${GPU_BUSY_TEXT}","msg":"Failed to get avatar preview"}`), attempts: 1 },
      { mode: 'error', status: 500, body: flask('{"detail":"Internal Server Error","msg":"Failed to get avatar preview"}'), attempts: 1 },
    ],
  },
  {
    name: 'add', upstream: 'avatar', method: 'POST', path: '/api/avatar/add',
    request: { headers: { ...bearer('tutor'), 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body: ADD_BODY },
    streamed: 'no', failure: avatarFailure('Error forwarding to avatar service'),
    timeout: [504, flask(`{"msg":"Avatar creation timeout (exceeded ${TIMEOUT_MS / 60_000} minutes)"}`)],
    errorStatuses: actionStatuses('Avatar creation failed', 'Invalid JSON response from avatar service'),
    prepare: (sims) => sims.avatar.avatars.delete('newcomer'),
  },
  {
    name: 'TTS models', upstream: 'tts', method: 'GET', path: '/api/tts/models', request: { headers: bearer('student') },
    streamed: 'no', failure: (text) => [500, flask(`{"error":"tts service: ${text}","msg":"Error connecting to TTS service"}`)],
    timeout: [504, flask('{"msg":"TTS service timeout"}')],
    errorStatuses: [
      { mode: 'status-503', status: 503, body: flask(`{"detail":"${GPU_BUSY_TEXT}","msg":"Failed to fetch TTS models"}`), attempts: 2 },
      { mode: 'error', status: 500, body: flask('{"detail":"Internal Server Error","msg":"Failed to fetch TTS models"}'), attempts: 1 },
    ],
  },
  {
    name: 'delete', upstream: 'avatar', method: 'POST', path: '/api/avatar/delete',
    request: { headers: { ...bearer('tutor'), ...FORM }, body: 'name=doomed' },
    streamed: 'no', failure: avatarFailure('Error forwarding to avatar service'), timeout: AVATAR_TIMEOUT,
    errorStatuses: actionStatuses('Avatar deletion failed', 'Invalid JSON response'),
    prepare: (sims) => sims.avatar.avatars.set('doomed', { description: '', tts_model: '', timbre: '', avatar_model: '', status: 'active' }),
  },
  {
    name: 'start', upstream: 'avatar', method: 'POST', path: '/api/avatar/start',
    request: { headers: { ...bearer('student'), ...FORM }, body: 'avatar_name=Zoe' },
    streamed: 'no', failure: avatarFailure('Error forwarding to avatar service'), timeout: AVATAR_TIMEOUT,
    errorStatuses: actionStatuses('Avatar start failed', 'Invalid JSON response from avatar service'),
  },
  ...(['GET', 'POST'] as const).map((method): Route => ({
    name: `WebRTC ${method}`, upstream: 'webrtc', method,
    path: method === 'GET' ? '/api/webrtc/health' : '/api/webrtc/human',
    request: method === 'GET' ? {} : { headers: { 'content-type': 'application/json' }, body: '{"sessionid":1,"text":"hi","type":"echo","interrupt":true}' },
    streamed: 'at-once', failure: proxyFailure, timeout: [504, flask('{"msg":"Proxy timeout"}')],
    errorStatuses: [
      { mode: 'unavailable', status: 503, body: '503: Service Unavailable', attempts: method === 'GET' ? 2 : 1 },
      { mode: 'error', status: 500, body: '500 Internal Server Error\n\nServer got itself in trouble', attempts: 1 },
    ],
  })),
];

/** What the client must see: api.md's answer, a response cut after its status line, or the huge body whole. */
type Expected = { answer: [number, string] } | { cut: true } | { whole: true };

interface Fault {
  mode: string;
  what: string;
  expect(route: Route): Expected;
  /** Requests reaching the upstream: GETs are retried once on a reset or refusal, never POSTs. */
  attempts(route: Route): number;
}

const once = () => 1;
const retriedIfGet = (route: Route) => (route.method === 'GET' ? 2 : 1);
/** A body cut mid-way is a reset: a JSON GET is retried; a pass-through already sent its status line. */
const retriedUnlessStreamed = (route: Route) => (route.streamed === 'no' ? retriedIfGet(route) : 1);
/** A JSON route answers `answer`; a pass-through whose status line went out is cut. */
const cutIfStreaming = (answer: (route: Route) => [number, string], sentBeforeBody: Route['streamed'][]) =>
  (route: Route): Expected => (sentBeforeBody.includes(route.streamed) ? { cut: true } : { answer: answer(route) });
const STARTED = ['first-byte', 'at-once'] as Route['streamed'][];

const FAULTS: Fault[] = [
  { mode: 'down', what: '(a) refuses connections', expect: (r) => ({ answer: r.failure('connection refused') }), attempts: () => 0 },
  { mode: 'reset', what: '(b) resets before the headers', expect: (r) => ({ answer: r.failure('connection reset') }), attempts: retriedIfGet },
  { mode: 'reset-body', what: '(c) resets mid-body', expect: cutIfStreaming((r) => r.failure('connection closed before the response was complete'), STARTED), attempts: retriedUnlessStreamed },
  { mode: 'hang', what: '(d) never answers', expect: (r) => ({ answer: r.timeout }), attempts: once },
  { mode: 'stall', what: '(e) stalls after half the body', expect: cutIfStreaming((r) => r.timeout, STARTED), attempts: once },
  { mode: 'stall-headers', what: '(e) stalls after the headers', expect: cutIfStreaming((r) => r.timeout, ['at-once']), attempts: once },
  { mode: 'break', what: '(f) closes after half its Content-Length', expect: cutIfStreaming((r) => r.failure('connection closed before the response was complete'), STARTED), attempts: retriedUnlessStreamed },
  { mode: 'short-body', what: '(f) sends less than its Content-Length and waits', expect: cutIfStreaming((r) => r.timeout, STARTED), attempts: once },
  { mode: 'garbage', what: '(g) answers garbage, not HTTP', expect: (r) => ({ answer: r.failure('invalid HTTP response') }), attempts: once },
  {
    mode: 'huge-body', what: '(h) sends a body larger than UPSTREAM_MAX_JSON_BYTES',
    expect: (r) => (r.streamed === 'no' ? { answer: r.failure(`response larger than ${MAX_JSON_BYTES} bytes`) } : { whole: true }),
    attempts: once,
  },
];

/** JSON.parse's own words for this text, as the list route reports a body that is not JSON. */
function jsonParseError(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message.replaceAll('"', '\\"');
  }
  throw new Error(`${text} is JSON`);
}

function call(gw: TestGateway, route: Route): Promise<RawResponse> {
  let timer: NodeJS.Timeout;
  const hang = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${route.name}: no answer ${HANG_MS} ms after a ${TIMEOUT_MS} ms timeout (a hang)`)), HANG_MS);
  });
  return Promise.race([send(gw.url + route.path, { method: route.method, ...route.request }), hang]).finally(() => clearTimeout(timer));
}

/** Sockets of one upstream's pool: in use by a call, and idle (kept alive for the next one). */
function pool(gw: TestGateway, upstream: UpstreamName): { inUse: number; idle: number } {
  const agent: http.Agent = gw.gateway.httpClient.agents[upstream];
  const count = (sockets: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(sockets).reduce((n, list) => n + (list?.length ?? 0), 0);
  return { inUse: count(agent.sockets), idle: count(agent.freeSockets) };
}

// No call left holding a socket, at most the one idle socket a sequential caller keeps, and (on
// the FastAPI services) no request left open at the upstream.
async function socketsBackToIdle(gw: TestGateway, sims: Sims): Promise<void> {
  const upstreams: UpstreamName[] = ['avatar', 'tts', 'webrtc'];
  await waitFor(
    () => upstreams.every((name) => pool(gw, name).inUse === 0 && pool(gw, name).idle <= 1) && sims.avatar.inFlight() === 0 && sims.tts.inFlight() === 0,
    `sockets back to idle (${JSON.stringify(Object.fromEntries(upstreams.map((name) => [name, pool(gw, name)])))})`,
    2000,
  );
}

function expectAnswer(res: RawResponse, [status, body]: [number, string]): void {
  expect(res.status, res.body).to.equal(status);
  expect(res.body).to.equal(body);
  expect(res.complete).to.equal(true);
}

describe('upstream fault matrix: every route x every fault (real gateway, simulated services)', () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  before(() => process.on('unhandledRejection', onRejection));
  after(() => process.off('unhandledRejection', onRejection));

  describe('each fault answers as api.md says, within the timeout, and leaves no socket behind', () => {
    let sims: Sims;
    let gw: TestGateway;

    before(async () => {
      sims = await startSims();
      gw = await startTestGateway(gatewayEnv(sims));
      await startupProbes(sims);
    });
    after(async () => {
      await gw?.close();
      await Promise.all(Object.values(sims ?? {}).map((sim: SimulatedService) => sim.close()));
    });

    const simOf = (route: Route): SimulatedService => sims[route.upstream];

    /** Puts the fault in place, calls the route, checks the upstream's count and the pool, then recovers. */
    async function withFault(route: Route, mode: string, attempts: number, check: (res: RawResponse) => void): Promise<void> {
      const sim = simOf(route);
      route.prepare?.(sims);
      sim.requests.length = 0;
      sim.setMode(mode);
      try {
        const res = await call(gw, route);
        check(res);
        expect(sim.requests, 'requests that reached the upstream').to.have.length(attempts);
        await socketsBackToIdle(gw, sims);
      } finally {
        sim.setMode('normal');
      }
      // The route works again as soon as its upstream does.
      route.prepare?.(sims);
      const again = await call(gw, route);
      expect(again.status, `${route.name} once the upstream is back: ${again.body}`).to.equal(200);
      await socketsBackToIdle(gw, sims);
    }

    for (const fault of FAULTS) {
      describe(fault.what, () => {
        for (const route of ROUTES) {
          const expected = fault.expect(route);
          const says = 'answer' in expected ? `${expected.answer[0]} ${expected.answer[1].trim()}` : 'cut' in expected ? 'a response cut after its status line' : 'the body whole';
          it(`${route.name}: ${says}`, () => withFault(route, fault.mode, fault.attempts(route), (res) => {
            if ('answer' in expected) return expectAnswer(res, expected.answer);
            expect(res.status).to.equal(200);
            if ('cut' in expected) {
              expect(res.complete, 'the response ends incomplete').to.equal(false);
              if (res.headers['content-length']) expect(res.bytes.length).to.be.lessThan(Number(res.headers['content-length']));
              return;
            }
            // Passed through, not limited: the service's answer and its padding, byte for byte.
            expect(res.complete).to.equal(true);
            expect(res.bytes.length).to.equal(HUGE_BODY_BYTES);
            const answer = res.bytes.toString('latin1').trimEnd();
            if (route.name === 'preview') expect(res.bytes.subarray(0, sims.avatar.previewImage('bob_math').length).equals(sims.avatar.previewImage('bob_math'))).to.equal(true);
            else expect(JSON.parse(answer)).to.be.an('object');
          }));
        }
      });
    }

    describe('(i) answers 5xx: the route\'s own answer (api.md route tables), GETs retried once on 502/503/504', () => {
      for (const route of ROUTES) {
        for (const row of route.errorStatuses) {
          it(`${route.name}, ${row.mode}: ${row.status} ${row.body.trim()}`, () => withFault(route, row.mode, row.attempts, (res) => expectAnswer(res, [row.status, row.body])));
        }
      }
    });
  });

  describe('(j) the upstreams close idle keep-alive connections while requests keep arriving around that idle time', () => {
    // The services close a connection idle for KEEP_ALIVE_MS (uvicorn: 5 s, shortened here) and,
    // like uvicorn and aiohttp, do not announce it; the gateway retires pooled sockets after
    // UPSTREAM_IDLE_SOCKET_MS, before that. The pauses between the rounds are the scenario itself:
    // idle times on both sides of UPSTREAM_IDLE_SOCKET_MS, up to and past KEEP_ALIVE_MS.
    const KEEP_ALIVE_MS = 300;
    const PAUSES_MS = [150, 190, 230, 270, 290, 300, 310, 330];
    let sims: Sims;
    let gw: TestGateway;

    before(async () => {
      sims = await startSims(KEEP_ALIVE_MS);
      gw = await startTestGateway(gatewayEnv(sims, { UPSTREAM_IDLE_SOCKET_MS: '200', UPSTREAM_TIMEOUT_MS: '2000', AVATAR_START_TIMEOUT_MS: '2000', AVATAR_ADD_TIMEOUT_MS: '2000', WEBRTC_TIMEOUT_MS: '2000' }));
      await startupProbes(sims);
    });
    after(async () => {
      await gw?.close();
      await Promise.all(Object.values(sims ?? {}).map((sim: SimulatedService) => sim.close()));
    });

    it(`every route answers 200 every time, no request is retried (${PAUSES_MS.length + 1} rounds of all routes at once)`, async () => {
      const prepareAll = () => ROUTES.forEach((route) => route.prepare?.(sims));
      const answers: Array<[string, number, string]> = [];
      for (const pause of [0, ...PAUSES_MS]) {
        await new Promise((resolve) => setTimeout(resolve, pause));
        prepareAll();
        const round = await Promise.all(ROUTES.map(async (route) => [route, await call(gw, route)] as const));
        for (const [route, res] of round) answers.push([`${route.name} after ${pause} ms idle`, res.status, res.body.slice(0, 200)]);
      }
      expect(answers.filter(([, status]) => status !== 200)).to.deep.equal([]);
      const rounds = PAUSES_MS.length + 1;
      const perUpstream = (upstream: UpstreamName) => ROUTES.filter((route) => route.upstream === upstream).length * rounds;
      expect(sims.avatar.requests).to.have.length(perUpstream('avatar'));
      expect(sims.tts.requests).to.have.length(perUpstream('tts'));
      expect(sims.webrtc.requests).to.have.length(perUpstream('webrtc'));
      await socketsBackToIdle(gw, sims);
    });
  });

  describe('afterwards', () => {
    it('no promise was rejected unhandled during the file', () => {
      expect(rejections.map(String)).to.deep.equal([]);
    });
  });
});
