// Property-based fuzzing of every route (fast-check): one real gateway in front of the simulated
// avatar, TTS and WebRTC services, all on 127.0.0.1, fed odd methods, paths, headers, tokens and
// form, multipart and JSON bodies over raw sockets. Whatever arrives, the answer is well formed,
// a 4xx unless an upstream explains otherwise, reveals no stack, address or token, and the process
// stays up. FUZZ_SEED=<n> replays a run; FUZZ_RUNS=<n> runs longer.
import { expect } from 'chai';
import fc from 'fast-check';
import { startAvatarService, type SimulatedAvatarService } from '../sim/avatarService.js';
import { startTtsService, type SimulatedTtsService } from '../sim/ttsService.js';
import type { RecordedRequest } from '../sim/types.js';
import { startWebrtcService, type SimulatedWebrtcService } from '../sim/webrtcService.js';
import { issueToken } from '../scripts/token.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';
import { exchange, parseResponses, type ParsedResponse } from './helpers/rawSocket.js';
import { tokenFor } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const RUNS = Number(process.env.FUZZ_RUNS ?? 250);

// Each route with the method it serves, so that most requests get past the method check.
const ROUTES: Array<[string, string]> = [
  ['/api/avatar/list', 'GET'], ['/api/avatar/preview', 'POST'], ['/api/avatar/add', 'POST'], ['/api/avatar/delete', 'POST'],
  ['/api/avatar/start', 'POST'], ['/api/tts/models', 'GET'], ['/api/webrtc/offer', 'POST'], ['/api/webrtc/human', 'POST'],
  ['/api/webrtc/humanaudio', 'POST'], ['/api/webrtc/client.js', 'GET'], ['/api/webrtc/', 'GET'], ['/api/health', 'GET'],
  ['/api/health/detailed', 'GET'], ['/api/ping', 'GET'], ['/metrics', 'GET'],
];
// Lower-case and unknown methods are refused by Node's parser.
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND', 'SEARCH', 'get', 'BREW'];
// Names the routes read, names they drop, and names that look like them.
const FIELD_NAMES = ['avatar_name', 'name', 'description', 'support_clone', 'ref_text', 'ref_file', 'avatar_name ', 'Name', 'sessionid', ''];
const HOSTILE_NAMES = [
  'bob_math', 'Zoe', '../../etc/passwd', '..', '.', 'a/b', 'a\\b', 'a\u0000b', '%2e%2e%2f', '..%2f', '\u2025', 'x'.repeat(129),
  'C:\\Windows', '/etc', '\r\nX-Injected: 1', '\u5934\u50cf', '\ud83d\ude00', '',
];
// Framing headers (Content-Length, Transfer-Encoding, Connection) are the test's own; clientFaults and
// hostile test their abuse.
const HEADER_NAMES = [
  'Origin', 'Access-Control-Request-Method', 'Access-Control-Request-Headers', 'X-Request-ID', 'Cookie', 'Host',
  'X-Forwarded-For', 'X-Forwarded-Host', 'Expect', 'Upgrade', 'Accept-Encoding', 'Range', 'Content-Encoding', 'X-Request-Time',
];

const TEST_JWT = { jwt: { secretKey: TEST_SECRET, algorithm: 'HS256', identityClaim: 'sub', decodeLeewaySeconds: 0 } };
const TOKENS = {
  tutor: tokenFor('tutor'),
  student: tokenFor('student'),
  expired: issueToken(TEST_JWT, { sub: 'old@example.com', role: 'tutor', expiresIn: -10 }),
  tampered: tokenFor('tutor').slice(0, -4) + 'AAAA',
};

/** Mostly printable text, with the characters that break parsers now and then: controls, CR/LF, quotes, percent signs, non-ASCII. */
const oddText = fc.string({
  unit: fc.oneof(
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 80 },
    { arbitrary: fc.constantFrom('"', "'", '%', '\\', '/', ';', ',', '=', '&', '+', '\u00e9', '\u00ff', '\u4f60', '\ud83d\ude00', '\ufffd'), weight: 16 },
    { arbitrary: fc.constantFrom('\r', '\n', '\r\n', '\u0000', '\t', '\u007f', '\u0085'), weight: 1 },
  ),
  maxLength: 24,
});

/** `usual` half the time, else one of `odd`: most requests then reach the handlers. */
const mostly = <T>(usual: T, ...odd: T[]) => fc.oneof({ arbitrary: fc.constant(usual), weight: odd.length }, fc.constantFrom(...odd));

const target = (route: string) => fc.tuple(
  mostly('', '/', '//', '/..', '/../..', '/%2e%2e/', '/..%2f..%2f', '%00', '%zz', '%E0%A4%A', '\\..\\', '/%0d%0aHost:x', '@evil.example', '//evil.example/x', ';x=1'),
  fc.option(fc.webQueryParameters(), { nil: undefined }),
  mostly('plain', 'upper', 'absolute', 'double-slash'),
).map(([suffix, query, shape]) => {
  let target = route + suffix;
  if (shape === 'upper') target = target.toUpperCase();
  if (shape === 'double-slash') target = target.replace('/api/', '/api//');
  if (shape === 'absolute') target = `http://evil.example${target}`;
  return query === undefined ? target : `${target}?${query}`;
});

const authorization = fc.oneof(
  fc.constant(undefined),
  { arbitrary: fc.constantFrom(TOKENS.tutor, TOKENS.student).map((token) => `Bearer ${token}`), weight: 6 },
  fc.constantFrom(TOKENS.expired, TOKENS.tampered).map((token) => `Bearer ${token}`),
  fc.constantFrom(TOKENS.tutor, TOKENS.student).map((token) => `Bearer  ${token}`),
  fc.constantFrom(TOKENS.tutor, TOKENS.student).map((token) => `Basic a, Bearer ${token}`),
  fc.constantFrom(TOKENS.tutor, TOKENS.student).map((token) => `bearer ${token}`),
  fc.constantFrom('Bearer', 'Bearer ', 'Bearer a.b', 'Bearer a.b.c', 'Basic a, , Bearer x', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'),
  oddText.map((text) => `Bearer ${text}`),
);

const header = fc.tuple(fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/)), oddText);

interface Body { contentType?: string; bytes: Buffer }

const fields = fc.array(fc.tuple(fc.constantFrom(...FIELD_NAMES), fc.oneof(fc.constantFrom(...HOSTILE_NAMES), oddText)), { maxLength: 5 });

const urlencoded = fields.map((pairs): Body => ({
  contentType: 'application/x-www-form-urlencoded',
  bytes: Buffer.from(pairs.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&')),
}));

// Raw bytes in a form body: percent-escapes that are no UTF-8, lone '%', '+' and '=' runs.
const rawUrlencoded = fc.array(fc.constantFrom('name=', 'avatar_name=', '%2e%2e%2f', '%ff', '%C0%AF', '%', '+', '&', '=', 'bob_math', '%00', '\u00ff'), { maxLength: 8 })
  .map((parts): Body => ({ contentType: 'application/x-www-form-urlencoded', bytes: Buffer.from(parts.join(''), 'latin1') }));

const filePart = fc.record({
  field: fc.constantFrom('prompt_face', 'prompt_voice', 'file', 'avatar_name'),
  filename: fc.oneof(fc.constantFrom('face.mp4', 'voice.wav', '', '../../x.mp4', 'a"b.mp4', '头像.mp4', 'a\r\nX: y.mp4'), oddText),
  contentType: fc.constantFrom('video/mp4', 'audio/wav', 'application/octet-stream', 'text/plain; charset=latin1', 'x'),
  content: fc.uint8Array({ maxLength: 300 }),
});

const multipart = fc.record({
  fields,
  files: fc.array(filePart, { maxLength: 2 }),
  boundary: fc.constantFrom('xYz', '----WebKitFormBoundary7MA4YWxkTrZu0gW', 'a b', '"quoted"'),
  typeShape: fc.constantFrom('ok', 'ok', 'ok', 'no-boundary', 'wrong-boundary', 'mixed'),
  truncateAt: fc.option(fc.nat(), { nil: undefined }),
}).map(({ fields: pairs, files, boundary, typeShape, truncateAt }): Body => {
  const bare = boundary.replace(/^"|"$/g, '');
  const parts = [
    ...pairs.map(([name, value]) => Buffer.from(`--${bare}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)),
    ...files.flatMap((file) => [
      Buffer.from(`--${bare}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.filename}"\r\nContent-Type: ${file.contentType}\r\n\r\n`),
      Buffer.from(file.content),
      Buffer.from('\r\n'),
    ]),
    Buffer.from(`--${bare}--\r\n`),
  ];
  let bytes = Buffer.concat(parts);
  if (truncateAt !== undefined) bytes = bytes.subarray(0, truncateAt % (bytes.length + 1));
  const contentType = {
    ok: `multipart/form-data; boundary=${boundary}`,
    'no-boundary': 'multipart/form-data',
    'wrong-boundary': 'multipart/form-data; boundary=other',
    mixed: `multipart/mixed; boundary=${boundary}`,
  }[typeShape];
  return { contentType, bytes };
});

const otherBody = fc.oneof(
  fc.jsonValue().map((value): Body => ({ contentType: 'application/json', bytes: Buffer.from(JSON.stringify(value) ?? 'null') })),
  fc.tuple(fc.constantFrom(undefined, 'text/plain', 'application/xml', 'image/png', 'application/x-www-form-urlencoded; charset=latin1', ';;', 'multipart/'), fc.uint8Array({ maxLength: 200 }))
    .map(([contentType, bytes]): Body => ({ contentType, bytes: Buffer.from(bytes) })),
);

const body = fc.oneof(fc.constant(undefined), urlencoded, rawUrlencoded, multipart, otherBody);

interface FuzzRequest { method: string; target: string; authorization?: string; headers: Array<[string, string]>; body?: Body }

const request = fc.constantFrom(...ROUTES).chain(([route, served]) => fc.record({
  method: mostly(served, ...METHODS),
  target: target(route),
  authorization,
  headers: fc.array(header, { maxLength: 3 }),
  body,
}));

function wire(r: FuzzRequest): Buffer {
  const lines = [`${r.method} ${r.target} HTTP/1.1`, 'Host: gateway.test'];
  if (r.authorization !== undefined) lines.push(`Authorization: ${r.authorization}`);
  for (const [name, value] of r.headers) lines.push(`${name}: ${value}`);
  if (r.body?.contentType !== undefined) lines.push(`Content-Type: ${r.body.contentType}`);
  if (r.body) lines.push(`Content-Length: ${r.body.bytes.length}`);
  lines.push('Connection: close');
  // Header text goes out as UTF-8 bytes, as a careless client would send it.
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), r.body?.bytes ?? Buffer.alloc(0)]);
}

/** Statuses Node's HTTP parser answers by itself, with no body, before any route runs. */
const PARSER_REFUSALS = [400, 417, 431, 505];

const STACK_OR_SOURCE = /\n\s+at |node_modules|\.ts:\d+|\.js:\d+|Error: /;

/** Deliberate difference 4, written out independently of services/avatarName.ts. */
const harmlessName = (name: string) =>
  name === '' || (!/[/\\\u0000-\u001f\u007f-\u009f]/.test(name) && name !== '.' && name !== '..' && [...name].length <= 128);

describe('fuzzing every route (fast-check, real gateway + simulated services)', function () {
  this.timeout(120_000);
  let avatar: SimulatedAvatarService;
  let tts: SimulatedTtsService;
  let webrtc: SimulatedWebrtcService;
  let gw: TestGateway;
  let internalAddresses: string[];

  before(async () => {
    avatar = await startAvatarService();
    tts = await startTtsService();
    webrtc = await startWebrtcService();
    gw = await startTestGateway({
      AVATAR_SERVICE_URL: avatar.url,
      TTS_SERVICE_URL: tts.url,
      WEBRTC_SERVICE_URL: webrtc.url,
      UPSTREAM_TIMEOUT_MS: '2000',
      WEBRTC_TIMEOUT_MS: '2000',
      LOG_LEVEL: 'info',
    });
    internalAddresses = [avatar.url, tts.url, webrtc.url].map((url) => new URL(url).host);
    // The start-up probes (GET / on each upstream) are done before the first exchange is counted.
    await waitFor(() => [avatar, tts, webrtc].every((sim) => sim.requests.some((r) => r.url === '/')), 'start-up probes');
  });
  after(async () => {
    await gw.close();
    await Promise.all([avatar.close(), tts.close(), webrtc.close()]);
  });

  /** The one answer to `r`, checked; throws with the reason when it is not acceptable. */
  function check(r: FuzzRequest, answers: ParsedResponse[], raw: string, reachedWebrtc: boolean): void {
    const sent = `${r.method} ${r.target}`;
    // One answer only: nothing smuggled in a body is ever answered as a second request.
    expect(answers, `${sent}: number of answers in ${JSON.stringify(raw.slice(0, 300))}`).to.have.length(1);
    const [answer] = answers;
    const contentType = answer.headers['content-type']?.[0];
    const text = answer.body.toString('utf8');

    expect(raw, `${sent}: a stack trace or source path`).not.to.match(STACK_OR_SOURCE);
    for (const address of internalAddresses) expect(raw, `${sent}: an internal address`).not.to.include(address);
    for (const token of Object.values(TOKENS)) expect(raw, `${sent}: a token echoed`).not.to.include(token);

    if (contentType === undefined && answer.body.length === 0 && PARSER_REFUSALS.includes(answer.status)) return;
    if (reachedWebrtc && contentType !== 'application/json') return; // the signalling service's own answer, passed through
    if (contentType === 'application/json') {
      // The gateway's own answer (or the avatar service's JSON passed on): a JSON object, no 5xx
      // with healthy upstreams, errors in Flask's bytes with their msg.
      expect(answer.status, `${sent}: ${text}`).to.be.below(500);
      if (r.method === 'HEAD') return;
      const parsed = JSON.parse(text);
      expect(parsed, `${sent}: ${text}`).to.be.an('object');
      if (answer.status >= 400) {
        expect(text.endsWith('\n'), `${sent}: ${text}`).to.equal(true);
        expect(parsed.msg, `${sent}: ${text}`).to.be.a('string');
      }
      return;
    }
    // What else the gateway itself answers: a preflight or plain OPTIONS, a ping, a preview, /metrics.
    expect(answer.status, `${sent}: ${answer.status} ${contentType}`).to.equal(200);
    expect(contentType, sent).to.be.oneOf(['text/html; charset=utf-8', 'text/plain; charset=utf-8', 'image/png', 'text/plain; version=0.0.4; charset=utf-8']);
  }

  /** What reached the upstreams because of `r`: no dangerous avatar name, no caller credentials. */
  function checkForwarded(r: FuzzRequest, toAvatar: RecordedRequest[], toWebrtc: RecordedRequest[]): void {
    for (const seen of toAvatar) {
      for (const [field, value] of seen.fields ?? []) {
        if (field === 'name' || field === 'avatar_name') expect(harmlessName(value), `${r.method} ${r.target}: forwarded ${JSON.stringify(value)}`).to.equal(true);
      }
    }
    for (const seen of toWebrtc) {
      expect(seen.headers, `${r.method} ${r.target}`).not.to.have.any.keys('authorization', 'cookie');
    }
  }

  it(`answers every request well (seed ${SEED}, ${RUNS} runs)`, async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const [avatarBefore, webrtcBefore] = [avatar.requests.length, webrtc.requests.length];
        const { response, closedByServer } = await exchange(gw.url, wire(r), { waitMs: 5000 });
        expect(closedByServer, `${r.method} ${r.target}: no answer within 5 s`).to.equal(true);
        const answers = parseResponses(response, { head: r.method === 'HEAD' });
        check(r, answers, response, webrtc.requests.length > webrtcBefore);
        checkForwarded(r, avatar.requests.slice(avatarBefore), webrtc.requests.slice(webrtcBefore));
        seen.set(answers[0].status, (seen.get(answers[0].status) ?? 0) + 1);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // The run exercised more than the parser's refusals and the auth check.
    expect([...seen.keys()]).to.include.members([200, 400, 401, 404, 405, 422]);

    // Still up, nothing unhandled, no token in the logs.
    const { response } = await exchange(gw.url, 'GET /api/ping HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n');
    expect(response).to.match(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\npong$/);
    const logs = gw.logs();
    expect(logs).not.to.match(/unhandled error|fatal/);
    for (const token of Object.values(TOKENS)) expect(logs).not.to.include(token);
  });
});
