// The avatar routes other than add, end to end (api.md: list, preview, TTS models, delete, start,
// and deliberate differences 4 and 5): the real gateway in front of the simulated avatar and TTS
// services, all on 127.0.0.1. Each case asserts the status, the exact body bytes and what the
// upstream received. Expected JSON bytes are literals written by Python's json.dumps (sort_keys,
// compact separators), not by the gateway's own encoder.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startAvatarService, type AvatarConfig, type AvatarMode, type SimulatedAvatarService } from '../sim/avatarService.js';
import { startTtsService, TTS_MODELS, type SimulatedTtsService } from '../sim/ttsService.js';
import type { CommonMode, SimServer } from '../sim/simServer.js';
import type { RecordedRequest, SimulatedService } from '../sim/types.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { send, type RawResponse } from './helpers/http.js';
import { exchange, parseResponses } from './helpers/rawSocket.js';
import { bearer } from './helpers/tokens.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';

const FRONTEND = 'http://localhost:3000';
const TIMEOUT_MS = '300';

// Expected bodies, as Python's json.dumps(..., sort_keys=True, separators=(',', ':')) writes them.
const DEFAULT_LIST = '{"Zoe":{"avatar_model":"","clone":false,"description":"Avatar: Zoe","status":"active","timbre":"","tts_model":""},"avatar_1":{"avatar_model":"","clone":false,"description":"Avatar: avatar_1","status":"active","timbre":"","tts_model":""},"bob_math":{"avatar_model":"","clone":false,"description":"Avatar: bob_math","status":"active","timbre":"","tts_model":""}}';
const UNICODE_LIST = '{"Zoe":{"avatar_model":"","clone":false,"description":"Avatar: Zoe","status":"active","timbre":"","tts_model":""},"avatar_1":{"avatar_model":"","clone":false,"description":"Avatar: avatar_1","status":"active","timbre":"","tts_model":""},"bob_math":{"avatar_model":"","clone":false,"description":"Avatar: bob_math","status":"active","timbre":"","tts_model":""},"\\u5f62\\u8c61":{"avatar_model":"","clone":false,"description":"Avatar: \\u5f62\\u8c61","status":"active","timbre":"","tts_model":""},"\\uff5a":{"avatar_model":"","clone":false,"description":"Avatar: \\uff5a","status":"active","timbre":"","tts_model":""},"\\ud83d\\ude00":{"avatar_model":"","clone":false,"description":"Avatar: \\ud83d\\ude00","status":"active","timbre":"","tts_model":""}}';
const OBJECT_LIST = '{"Zoe":{"avatar_model":"musetalk","clone":false,"description":"Zoe, English conversation","status":"active","timbre":"en-US-AriaNeural","tts_model":"edgeTTS"},"avatar_1":{"avatar_model":"wav2lip","clone":false,"description":"\\u9ed8\\u8ba4\\u5f62\\u8c61","status":"active","support_clone":false,"timbre":"zh-CN-XiaoxiaoNeural","tts_model":"edgeTTS"},"bob_math":{"avatar_model":"wav2lip","clone":true,"description":"Bob explains maths","status":"active","support_clone":true,"timbre":"","tts_model":"cosyvoice"}}';
const NGINX_PAGE = '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n';
const NGINX_PAGE_JSON = '"<!DOCTYPE html>\\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\\n"';
const AN_AVATAR: AvatarConfig = { description: '', tts_model: '', timbre: '', avatar_model: 'wav2lip', status: 'active' };

interface Form {
  headers: Record<string, string>;
  body: Buffer;
}

const urlencoded = (pairs: Array<[string, string]>): Form => ({
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  body: Buffer.from(new URLSearchParams(pairs).toString()),
});

/** What the browser's FormData sends; a pair with a filename is a file part. */
function multipart(pairs: Array<[string, string] | [string, string, string]>): Form {
  const boundary = '----WebKitFormBoundary7MA4YWxkTrZu0gW';
  const parts = pairs.map(([name, value, filename]) => Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"`
      + (filename === undefined ? '\r\n\r\n' : `; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\n`)),
    Buffer.from(value),
    Buffer.from('\r\n'),
  ]));
  return {
    headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
    body: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]),
  };
}

const jsonRequest = (value: unknown): Form => ({ headers: { 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify(value)) });

/** A body the gateway wrote itself: Flask's jsonify ends it with a newline. */
const flask = (json: string) => `${json}\n`;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `{"error":"<any text>","msg":<msg>}`: the error's wording is free (api.md, "JSON bodies"). */
const withErrorText = (msg: string) => new RegExp(`^\\{"error":"(?:[^"\\\\\\n]|\\\\.)+","msg":"${escapeRegExp(msg)}"\\}\\n$`);

function expectAnswer(res: RawResponse, status: number, body: string | RegExp): void {
  expect(res.status, res.body).to.equal(status);
  expect(res.headers['content-type']).to.equal('application/json');
  if (typeof body === 'string') expect(res.body).to.equal(body);
  else expect(res.body).to.match(body);
}

/** Exactly one upstream call, with this method, path and urlencoded form (none for a GET). */
function expectForwarded(requests: RecordedRequest[], res: RawResponse, method: string, url: string, fields?: Array<[string, string]>): void {
  expect(requests.map((r) => `${r.method} ${r.url}`)).to.deep.equal([`${method} ${url}`]);
  const [seen] = requests;
  if (fields) {
    expect(seen.encoding).to.equal('application/x-www-form-urlencoded');
    expect(seen.fields).to.deep.equal(fields);
  } else {
    expect(seen.bodySize).to.equal(0);
  }
  expect(seen.headers['x-request-id']).to.be.a('string').and.equal(res.headers['x-request-id']);
  expect(seen.headers).not.to.have.property('authorization');
  expect(seen.headers).not.to.have.property('cookie');
}

/** One row of a route's table in api.md: the upstream's behaviour and the answer it gets. */
interface Row<Mode> {
  mode: Mode;
  status: number;
  body: string | RegExp;
  /** Upstream requests made; default 1 (0 when the service is down). */
  attempts?: number;
}

/** One test per row: the service in that mode, the route's answer, how many calls it made. */
function answersRows<Mode extends string>(service: () => SimServer<Mode>, rows: Array<Row<Mode>>, request: () => Promise<RawResponse>): void {
  for (const row of rows) {
    const attempts = row.attempts ?? (row.mode === 'down' ? 0 : 1);
    it(`${row.mode}: ${row.status} ${String(row.body).trim()}, ${attempts} upstream request(s)`, async () => {
      service().setMode(row.mode);
      expectAnswer(await request(), row.status, row.body);
      expect(service().requests).to.have.length(attempts);
    });
  }
}

/** api.md's common mapping with a route's messages; a GET is retried once after a reset. */
const failureRows = (upstream: 'avatar' | 'tts', connect: string, timeout: string, method: 'GET' | 'POST'): Array<Row<CommonMode>> => [
  { mode: 'down', status: 500, body: flask(`{"error":"${upstream} service: connection refused","msg":"${connect}"}`) },
  { mode: 'reset', status: 500, body: flask(`{"error":"${upstream} service: connection reset","msg":"${connect}"}`), attempts: method === 'GET' ? 2 : 1 },
  { mode: 'garbage', status: 500, body: flask(`{"error":"${upstream} service: invalid HTTP response","msg":"${connect}"}`) },
  { mode: 'hang', status: 504, body: flask(`{"msg":"${timeout}"}`) },
];

/** Delete and start answer alike (api.md: start "answers as delete"), never retried. */
const actionRows = (failed: string, invalidJson: string): Array<Row<AvatarMode>> => [
  { mode: 'status-error', status: 400, body: flask(`{"detail":{"message":"CUDA out of memory","status":"error"},"msg":"${failed}"}`) },
  { mode: 'status-500', status: 400, body: flask(`{"detail":{"detail":"Avatar service internal error"},"msg":"${failed}"}`) },
  { mode: 'status-503', status: 400, body: flask(`{"detail":{"detail":"GPU busy, try again later"},"msg":"${failed}"}`) },
  { mode: 'html', status: 500, body: flask(`{"msg":"${invalidJson}","raw":${NGINX_PAGE_JSON}}`) },
  { mode: 'error', status: 500, body: flask(`{"msg":"${invalidJson}","raw":"Internal Server Error"}`) },
  { mode: 'json-array', status: 500, body: flask('{"msg":"Internal Server Error"}') },
  ...failureRows('avatar', 'Error forwarding to avatar service', 'Avatar service timeout', 'POST'),
];

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

// The gateway probes each upstream with GET / once at start-up; that probe stays out of the records.
async function startupProbe(service: SimulatedService): Promise<void> {
  await waitFor(() => service.requests.some((r) => r.url === '/'), 'the start-up probe');
  service.requests.length = 0;
}

describe('avatar routes other than add (real gateway, simulated avatar and TTS services)', () => {
  let avatar: SimulatedAvatarService;
  let tts: SimulatedTtsService;

  before(async () => {
    avatar = await startAvatarService({ previewSide: 64 });
    tts = await startTtsService();
  });
  after(async () => {
    await avatar.close();
    await tts.close();
  });

  describe('with the TTS service as the model source', () => {
    let gw: TestGateway;
    const get = (path: string, headers: Record<string, string> = bearer('student')) => send(`${gw.url}${path}`, { headers });
    const post = (path: string, form?: Form, role = 'tutor', extra: Record<string, string> = {}) =>
      send(`${gw.url}${path}`, { method: 'POST', headers: { ...bearer(role), ...form?.headers, ...extra }, body: form?.body });

    /** Sends a form and goes away once it reached the service. */
    async function abandon(path: string, form: Form, role: string): Promise<void> {
      const req = http.request(`${gw.url}${path}`, {
        method: 'POST', agent: false, headers: { ...bearer(role), ...form.headers, 'Content-Length': String(form.body.length) },
      });
      req.on('error', () => undefined);
      req.end(form.body);
      await waitFor(() => avatar.requests.length === 1, 'the request forwarded');
      req.destroy();
    }

    before(async () => {
      gw = await startTestGateway({
        AVATAR_SERVICE_URL: avatar.url,
        TTS_SERVICE_URL: tts.url,
        UPSTREAM_TIMEOUT_MS: TIMEOUT_MS,
        // Failure rows follow each other here: the breaker must not turn them into 503s.
        BREAKER_FAILURE_THRESHOLD: '1000',
      });
      await Promise.all([startupProbe(avatar), startupProbe(tts)]);
    });
    after(() => gw.close());
    beforeEach(() => {
      avatar.reset();
      tts.setMode('normal');
      tts.requests.length = 0;
    });

    describe('GET /api/avatar/list', () => {
      it('the list form: one placeholder per name, keys in sorted order; the upstream gets a bare GET', async () => {
        const res = await get('/api/avatar/list', { ...bearer('student'), Cookie: 'session=abc', 'X-Request-ID': 'routes-list-1' });
        expectAnswer(res, 200, flask(DEFAULT_LIST));
        expect(res.headers['x-request-id']).to.equal('routes-list-1');
        expectForwarded(avatar.requests, res, 'GET', '/avatar/get_avatars');
      });

      it('non-ASCII names are escaped as \\uXXXX and sorted by code point (U+FF5A before U+1F600)', async () => {
        for (const name of ['😀', 'ｚ', '形象']) avatar.avatars.set(name, AN_AVATAR);
        expectAnswer(await get('/api/avatar/list'), 200, flask(UNICODE_LIST));
      });

      it('names that are JavaScript property names (__proto__, constructor) are names like any other, in both forms', async () => {
        for (const name of ['__proto__', 'constructor']) avatar.avatars.set(name, { support_clone: true, ...AN_AVATAR });
        const res = await get('/api/avatar/list');
        expect(res.status).to.equal(200);
        expect(Object.keys(JSON.parse(res.body))).to.deep.equal(['Zoe', '__proto__', 'avatar_1', 'bob_math', 'constructor']);
        expect(res.body).to.include(',"__proto__":{"avatar_model":"","clone":false,"description":"Avatar: __proto__","status":"active","timbre":"","tts_model":""},"avatar_1":');
        avatar.setMode('list-object');
        const objects = await get('/api/avatar/list');
        expect(objects.body).to.include(',"__proto__":{"avatar_model":"wav2lip","clone":true,"description":"","status":"active","support_clone":true,"timbre":"","tts_model":""},"avatar_1":');
        expect(objects.body.endsWith(',"constructor":{"avatar_model":"wav2lip","clone":true,"description":"","status":"active","support_clone":true,"timbre":"","tts_model":""}}\n')).to.equal(true);
      });

      it('the object form keeps each config and adds clone = support_clone (false when absent)', async () => {
        avatar.setMode('list-object');
        expectAnswer(await get('/api/avatar/list'), 200, flask(OBJECT_LIST));
      });

      it('?timeout=30000 (what the frontend adds) is not forwarded', async () => {
        const res = await get('/api/avatar/list?timeout=30000');
        expectAnswer(res, 200, flask(DEFAULT_LIST));
        expectForwarded(avatar.requests, res, 'GET', '/avatar/get_avatars');
      });

      it('HEAD runs the same call and answers without a body', async () => {
        const full = await get('/api/avatar/list');
        avatar.requests.length = 0;
        const res = await send(`${gw.url}/api/avatar/list`, { method: 'HEAD', headers: bearer('student') });
        expect(res.status).to.equal(200);
        expect(res.headers['content-type']).to.equal('application/json');
        expect(res.headers['content-length']).to.equal(full.headers['content-length']);
        expect(res.bytes).to.have.length(0);
        expectForwarded(avatar.requests, res, 'GET', '/avatar/get_avatars');
      });

      answersRows(() => avatar, [
        { mode: 'avatars-null', status: 500, body: flask('{"msg":"Internal Server Error"}') },
        { mode: 'avatars-number', status: 500, body: flask('{"msg":"Internal Server Error"}') },
        { mode: 'json-array', status: 500, body: flask('{"msg":"Internal Server Error"}') },
        { mode: 'no-status', status: 200, body: '{"avatars":["bob_math","Zoe","avatar_1"]}' },
        { mode: 'status-error', status: 200, body: '{"status":"error","message":"CUDA out of memory"}' },
        { mode: 'status-500', status: 500, body: '{"detail":"Avatar service internal error"}' },
        { mode: 'status-503', status: 503, body: '{"detail":"GPU busy, try again later"}', attempts: 2 },
        { mode: 'html', status: 500, body: withErrorText('Failed to connect to avatar service') },
        { mode: 'error', status: 500, body: withErrorText('Failed to connect to avatar service') },
        ...failureRows('avatar', 'Failed to connect to avatar service', 'Avatar service timeout', 'GET'),
        { mode: 'stall', status: 504, body: flask('{"msg":"Avatar service timeout"}') },
        { mode: 'slow', status: 200, body: flask(DEFAULT_LIST) },
      ], () => get('/api/avatar/list'));

      for (const path of ['/api/avatar/list/', '/api/Avatar/List']) {
        it(`${path} is not the list route: 404, nothing forwarded`, async () => {
          expectAnswer(await get(path), 404, flask(`{"msg":"Resource not found","path":"${path}"}`));
          expect(avatar.requests).to.have.length(0);
        });
      }
    });

    describe('POST /api/avatar/preview', () => {
      it('multipart (what the frontend sends): the PNG streamed back byte for byte with its type', async () => {
        const res = await post('/api/avatar/preview', multipart([['avatar_name', 'bob_math'], ['extra', 'dropped']]), 'student', { Cookie: 'session=abc' });
        expect(res.status).to.equal(200);
        expect(res.headers['content-type']).to.equal('image/png');
        const png = avatar.previewImage('bob_math');
        expect(res.headers['content-length']).to.equal(String(png.length));
        expect(sha256(res.bytes)).to.equal(sha256(png));
        expectForwarded(avatar.requests, res, 'POST', '/avatar/preview', [['avatar_name', 'bob_math']]);
      });

      it('urlencoded works alike; a non-ASCII name arrives as sent', async () => {
        avatar.avatars.set('形象', AN_AVATAR);
        const res = await post('/api/avatar/preview', urlencoded([['avatar_name', '形象']]));
        expect(res.status).to.equal(200);
        expect(res.bytes.equals(avatar.previewImage('形象'))).to.equal(true);
        expectForwarded(avatar.requests, res, 'POST', '/avatar/preview', [['avatar_name', '形象']]);
      });

      it('any 200 passes through as it comes, whatever its content', async () => {
        avatar.setMode('html');
        const res = await post('/api/avatar/preview', multipart([['avatar_name', 'bob_math']]));
        expect(res.status).to.equal(200);
        expect(res.headers['content-type']).to.equal('text/html; charset=utf-8');
        expect(res.body).to.equal(NGINX_PAGE);
      });

      it('a 404 from the service: 404 with its body as a string in detail', async () => {
        const res = await post('/api/avatar/preview', multipart([['avatar_name', 'nobody']]));
        expectAnswer(res, 404, flask('{"detail":"{\\"detail\\":\\"Avatar preview image not found for nobody\\"}","msg":"Failed to get avatar preview"}'));
        expectForwarded(avatar.requests, res, 'POST', '/avatar/preview', [['avatar_name', 'nobody']]);
      });

      answersRows(() => avatar, [
        { mode: 'status-500', status: 500, body: flask('{"detail":"{\\"detail\\":\\"Avatar service internal error\\"}","msg":"Failed to get avatar preview"}') },
        { mode: 'status-503', status: 503, body: flask('{"detail":"{\\"detail\\":\\"GPU busy, try again later\\"}","msg":"Failed to get avatar preview"}') },
        { mode: 'error', status: 500, body: flask('{"detail":"Internal Server Error","msg":"Failed to get avatar preview"}') },
        ...failureRows('avatar', 'Error forwarding to avatar service', 'Avatar service timeout', 'POST'),
      ], () => post('/api/avatar/preview', multipart([['avatar_name', 'bob_math']])));

      it('an image that trickles in keeps flowing to the client, whole (not cut by the timeout)', async () => {
        avatar.setMode('slow');
        const res = await post('/api/avatar/preview', multipart([['avatar_name', 'bob_math']]));
        expect(res.status).to.equal(200);
        expect(res.complete).to.equal(true);
        expect(res.bytes.equals(avatar.previewImage('bob_math'))).to.equal(true);
      });

      for (const mode of ['stall', 'break'] as const) {
        it(`an image that ${mode === 'stall' ? 'stalls' : 'breaks'} after the status line: the client's response is cut, never whole`, async () => {
          avatar.setMode(mode);
          const res = await post('/api/avatar/preview', multipart([['avatar_name', 'bob_math']]));
          expect(res.status).to.equal(200);
          expect(res.complete).to.equal(false);
          expect(res.bytes.length).to.be.lessThan(avatar.previewImage('bob_math').length);
        });
      }
    });

    describe('GET /api/tts/models from TTS_SERVICE_URL', () => {
      it('a 200 passes through as the service wrote it; the upstream gets a bare GET', async () => {
        const res = await get('/api/tts/models?timeout=30000', { ...bearer('student'), Cookie: 'session=abc' });
        expectAnswer(res, 200, JSON.stringify(TTS_MODELS));
        expectForwarded(tts.requests, res, 'GET', '/tts/models');
        expect(avatar.requests).to.have.length(0);
      });

      answersRows(() => tts, [
        { mode: 'status-500', status: 500, body: flask('{"detail":"{\\"detail\\":\\"Avatar service internal error\\"}","msg":"Failed to fetch TTS models"}') },
        { mode: 'status-503', status: 503, body: flask('{"detail":"{\\"detail\\":\\"GPU busy, try again later\\"}","msg":"Failed to fetch TTS models"}'), attempts: 2 },
        { mode: 'error', status: 500, body: flask('{"detail":"Internal Server Error","msg":"Failed to fetch TTS models"}') },
        { mode: 'html', status: 500, body: withErrorText('Error connecting to TTS service') },
        ...failureRows('tts', 'Error connecting to TTS service', 'TTS service timeout', 'GET'),
        { mode: 'stall', status: 504, body: flask('{"msg":"TTS service timeout"}') },
        { mode: 'slow', status: 200, body: JSON.stringify(TTS_MODELS) },
      ], () => get('/api/tts/models'));
    });

    describe('POST /api/avatar/delete', () => {
      it('a tutor deletes (multipart, what the frontend sends): the answer passed through, urlencoded name only upstream', async () => {
        const res = await post('/api/avatar/delete', multipart([['name', 'Zoe'], ['avatar_name', 'bob_math']]), 'tutor', { Cookie: 'session=abc' });
        expectAnswer(res, 200, '{"status":"success","message":"Avatar \'Zoe\' has been successfully deleted"}');
        expectForwarded(avatar.requests, res, 'POST', '/avatar/delete', [['name', 'Zoe']]);
        expect(avatar.avatars.has('Zoe')).to.equal(false);
      });

      it('a student gets 403 and nothing is forwarded', async () => {
        expectAnswer(await post('/api/avatar/delete', multipart([['name', 'Zoe']]), 'student'), 403, flask('{"msg":"Permission denied"}'));
        expect(avatar.requests).to.have.length(0);
        expect(avatar.avatars.has('Zoe')).to.equal(true);
      });

      it('an unknown avatar (404 JSON): 400 with the JSON in detail', async () => {
        const res = await post('/api/avatar/delete', multipart([['name', 'nobody']]));
        expectAnswer(res, 400, flask('{"detail":{"detail":"Avatar \'nobody\' does not exist, cannot delete"},"msg":"Avatar deletion failed"}'));
      });

      answersRows(() => avatar, actionRows('Avatar deletion failed', 'Invalid JSON response'),
        () => post('/api/avatar/delete', multipart([['name', 'Zoe']])));
    });

    describe('POST /api/avatar/start', () => {
      it('a student starts an avatar (urlencoded, what the frontend sends); ref_file is dropped', async () => {
        const res = await post('/api/avatar/start', urlencoded([['ref_file', 'voice.wav'], ['avatar_name', 'bob_math']]), 'student', { Cookie: 'session=abc' });
        expectAnswer(res, 200, '{"status":"success","message":"Successfully switched to avatar bob_math, service started on port 8615"}');
        expectForwarded(avatar.requests, res, 'POST', '/avatar/start', [['avatar_name', 'bob_math']]);
      });

      it('multipart works alike', async () => {
        const res = await post('/api/avatar/start', multipart([['avatar_name', 'Zoe'], ['ref_file', 'x', 'voice.wav']]), 'student');
        expect(res.status).to.equal(200);
        expectForwarded(avatar.requests, res, 'POST', '/avatar/start', [['avatar_name', 'Zoe']]);
      });

      it('its timeout is AVATAR_START_TIMEOUT_MS (60 s here), not UPSTREAM_TIMEOUT_MS', async () => {
        avatar.setLatency(Number(TIMEOUT_MS) + 200);
        expectAnswer(await get('/api/avatar/list'), 504, flask('{"msg":"Avatar service timeout"}'));
        const res = await post('/api/avatar/start', urlencoded([['avatar_name', 'bob_math']]), 'student');
        expect(res.status).to.equal(200);
      });

      // Its 60 s timeout is tested with a gateway of its own, below.
      answersRows(() => avatar, actionRows('Avatar start failed', 'Invalid JSON response from avatar service').filter((row) => row.mode !== 'hang'),
        () => post('/api/avatar/start', urlencoded([['avatar_name', 'bob_math']]), 'student'));

      it('a client that goes away while the avatar starts cancels the upstream call (never retried)', async () => {
        avatar.setMode('hang');
        await abandon('/api/avatar/start', urlencoded([['avatar_name', 'bob_math']]), 'student');
        await waitFor(() => avatar.inFlight() === 0, 'the upstream call closed');
        expect(avatar.requests).to.have.length(1);
      });

      it('an unknown avatar (200 status:error): 400 with the JSON in detail', async () => {
        const res = await post('/api/avatar/start', urlencoded([['avatar_name', 'nobody']]), 'student');
        expectAnswer(res, 400, flask('{"detail":{"message":"Avatar nobody does not exist","status":"error"},"msg":"Avatar start failed"}'));
      });
    });

    // preview and delete as the frontend sends them (multipart), start likewise (urlencoded).
    const FORM_ROUTES = [
      { path: '/api/avatar/preview', field: 'avatar_name', missing: 'Missing avatar_name in form-data', encode: multipart, success: 200 },
      { path: '/api/avatar/delete', field: 'name', missing: "Missing 'name' in form-data", encode: multipart, success: 200 },
      { path: '/api/avatar/start', field: 'avatar_name', missing: "Missing 'avatar_name' in form-data", encode: urlencoded, success: 200 },
    ];

    describe('form fields (api.md, "Forms")', () => {
      for (const route of FORM_ROUTES) {
        const { path, field } = route;
        const notAField: Array<[string, () => Promise<RawResponse>]> = [
          ['no body', () => post(path)],
          ['an empty value', () => post(path, route.encode([[field, '']]))],
          ['an empty urlencoded value', () => post(path, urlencoded([[field, '']]))],
          ['a JSON body', () => post(path, jsonRequest({ [field]: 'bob_math' }))],
          ['a query parameter', () => post(`${path}?${field}=bob_math`, urlencoded([['other', 'x']]))],
          ['a file part of that name', () => post(path, multipart([[field, 'bob_math', 'name.txt']]))],
        ];
        for (const [what, request] of notAField) {
          it(`${path}: ${what} is no ${field}: 400, nothing forwarded`, async () => {
            expectAnswer(await request(), 400, flask(JSON.stringify({ msg: route.missing })));
            expect(avatar.requests).to.have.length(0);
          });
        }

        it(`${path}: a body over 1 MB answers 413, nothing forwarded`, async () => {
          const res = await post(path, urlencoded([[field, 'bob_math'], ['padding', 'x'.repeat(1024 * 1024)]]));
          expectAnswer(res, 413, flask('{"msg":"Request body too large"}'));
          expect(avatar.requests).to.have.length(0);
        });

        it(`${path}: multipart without a boundary answers 400 "Malformed form data", nothing forwarded`, async () => {
          const { body } = multipart([[field, 'bob_math']]);
          const res = await post(path, { headers: { 'Content-Type': 'multipart/form-data' }, body });
          expectAnswer(res, 400, flask('{"msg":"Malformed form data"}'));
          expect(avatar.requests).to.have.length(0);
        });

        for (const encode of [urlencoded, multipart]) {
          it(`${path}: the first ${field} wins (${encode.name})`, async () => {
            const res = await post(path, encode([[field, 'bob_math'], [field, 'Zoe']]));
            expect(res.status).to.equal(route.success);
            expect(avatar.requests[0].fields).to.deep.equal([[field, 'bob_math']]);
          });
        }
      }
    });

    describe('avatar names (deliberate difference 4)', () => {
      const refused: Array<[string, string]> = [
        ['../x', 'a parent path'], ['a/b', 'a slash'], ['a\\b', 'a backslash'], ['a\u0000b', 'NUL'],
        ['a\u001fb', 'a C0 control'], ['a\u007fb', 'DEL'], ['a\u0085b', 'a C1 control'], ['line\nbreak', 'a newline'],
        ['.', '"."'], ['..', '".."'], ['a'.repeat(129), '129 characters'],
      ];
      const accepted: Array<[string, string]> = [
        ['a'.repeat(128), '128 characters'], ['😀'.repeat(128), '128 astral characters (256 UTF-16 units)'],
        ['形象 老师', 'non-ASCII with a space'], ['a..b', 'dots inside'], ['...', 'three dots'],
      ];
      for (const route of FORM_ROUTES) {
        for (const [name, what] of refused) {
          it(`${route.path}: ${what} is refused with 400 and nothing forwarded`, async () => {
            expectAnswer(await post(route.path, route.encode([[route.field, name]])), 400, flask('{"msg":"Invalid avatar name"}'));
            expect(avatar.requests).to.have.length(0);
          });
        }
        for (const [name, what] of accepted) {
          it(`${route.path}: ${what} is accepted and forwarded as sent`, async () => {
            avatar.avatars.set(name, AN_AVATAR);
            const res = await post(route.path, route.encode([[route.field, name]]));
            expect(res.status, res.body).to.equal(route.success);
            expect(avatar.requests[0].fields).to.deep.equal([[route.field, name]]);
          });
        }
      }
    });

    describe('authentication', () => {
      const routes: Array<[string, string]> = [
        ['GET', '/api/avatar/list'], ['POST', '/api/avatar/preview'], ['GET', '/api/tts/models'],
        ['POST', '/api/avatar/delete'], ['POST', '/api/avatar/start'],
      ];
      for (const [method, path] of routes) {
        it(`${method} ${path} without a token: 401 with CORS headers, nothing forwarded`, async () => {
          const form = method === 'POST' ? multipart([['name', 'Zoe'], ['avatar_name', 'Zoe']]) : undefined;
          const res = await send(`${gw.url}${path}`, { method, headers: { Origin: FRONTEND, ...form?.headers }, body: form?.body });
          expectAnswer(res, 401, flask('{"msg":"Missing Authorization Header"}'));
          expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
          expect(res.headers.vary).to.match(/\bOrigin\b/);
          const bare = await send(`${gw.url}${path}`, { method });
          expectAnswer(bare, 401, flask('{"msg":"Missing Authorization Header"}'));
          expect(bare.headers['access-control-allow-origin']).to.equal('*');
          expect(avatar.requests).to.have.length(0);
          expect(tts.requests).to.have.length(0);
        });

        it(`a CORS preflight for ${path} needs no token and forwards nothing`, async () => {
          const res = await send(`${gw.url}${path}`, {
            method: 'OPTIONS',
            headers: { Origin: FRONTEND, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': 'authorization,x-request-time' },
          });
          expect(res.status).to.equal(200);
          expect(res.bytes).to.have.length(0);
          expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
          expect(res.headers['access-control-allow-headers']).to.equal('authorization,x-request-time');
          expect(avatar.requests).to.have.length(0);
        });

        const other = method === 'GET' ? 'POST' : 'GET';
        const allow = method === 'GET' ? 'GET, HEAD, OPTIONS' : 'OPTIONS, POST';
        it(`${other} ${path}: 405 with Allow: ${allow}`, async () => {
          const res = await send(`${gw.url}${path}`, { method: other, headers: bearer('tutor') });
          expectAnswer(res, 405, flask('{"msg":"Method not allowed"}'));
          expect(res.headers.allow).to.equal(allow);
          expect(avatar.requests).to.have.length(0);
        });
      }
    });
  });

  describe('POST /api/avatar/preview against an ad-hoc image service', () => {
    const MAX_JSON_BYTES = 1024;
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    let upstream: TestUpstream;
    let gw: TestGateway;
    let endlessClosed = false;

    before(async () => {
      upstream = await startUpstream((req, res) => {
        const body: Buffer[] = [];
        req.on('data', (chunk: Buffer) => body.push(chunk));
        req.once('end', () => {
          const form = Buffer.concat(body).toString();
          if (form === 'avatar_name=chatty') {
            res.writeHead(404, { 'Content-Type': 'text/plain' }).end('x'.repeat(2 * MAX_JSON_BYTES));
            return;
          }
          if (form !== 'avatar_name=endless') {
            // Node's http server sends no Content-Type unless told.
            res.writeHead(200, { 'Content-Length': String(png.length) }).end(png);
            return;
          }
          // An image that never ends but keeps flowing: only the client's going away can stop it.
          res.writeHead(200, { 'Content-Type': 'image/png' });
          const timer = setInterval(() => res.write(png), 20);
          res.once('close', () => {
            clearInterval(timer);
            endlessClosed = true;
          });
        });
      });
      gw = await startTestGateway({ AVATAR_SERVICE_URL: upstream.url, UPSTREAM_MAX_JSON_BYTES: String(MAX_JSON_BYTES) });
      await waitFor(() => upstream.requests.some((r) => r.url === '/'), 'the start-up probe');
    });
    after(async () => {
      await gw.close();
      await upstream.close();
    });

    it('an image without a Content-Type is answered as image/png', async () => {
      const form = multipart([['avatar_name', 'bob_math']]);
      const res = await send(`${gw.url}/api/avatar/preview`, { method: 'POST', headers: { ...bearer('student'), ...form.headers }, body: form.body });
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.equal('image/png');
      expect(res.bytes.equals(png)).to.equal(true);
      expect(upstream.requests.at(-1)).to.include({ method: 'POST', url: '/avatar/preview' });
      expect(upstream.requests.at(-1)!.headers['content-type']).to.equal('application/x-www-form-urlencoded');
    });

    it('an error body larger than UPSTREAM_MAX_JSON_BYTES is a failure named like every other upstream one', async () => {
      const form = multipart([['avatar_name', 'chatty']]);
      const res = await send(`${gw.url}/api/avatar/preview`, { method: 'POST', headers: { ...bearer('student'), ...form.headers }, body: form.body });
      expectAnswer(res, 500, flask(`{"error":"avatar service: response larger than ${MAX_JSON_BYTES} bytes","msg":"Error forwarding to avatar service"}`));
    });

    it('a client that goes away mid-image cancels the upstream call', async () => {
      const form = multipart([['avatar_name', 'endless']]);
      const req = http.request(`${gw.url}/api/avatar/preview`, {
        method: 'POST', agent: false, headers: { ...bearer('student'), ...form.headers, 'Content-Length': String(form.body.length) },
      });
      req.on('error', () => undefined);
      let received = 0;
      req.once('response', (res) => {
        res.on('data', (chunk: Buffer) => { received += chunk.length; });
        res.on('error', () => undefined);
      });
      req.end(form.body);
      await waitFor(() => received > 4 * png.length, 'the image flowing');
      req.destroy();
      await waitFor(() => endlessClosed, 'the upstream response closed');
    });
  });

  describe('AVATAR_MANAGER_ROLES and AVATAR_START_TIMEOUT_MS', () => {
    let gw: TestGateway;
    const post = (path: string, role: string, form: Form) =>
      send(`${gw.url}${path}`, { method: 'POST', headers: { ...bearer(role), ...form.headers }, body: form.body });

    before(async () => {
      avatar.reset();
      gw = await startTestGateway({
        AVATAR_SERVICE_URL: avatar.url,
        AVATAR_MANAGER_ROLES: 'admin, Teacher',
        AVATAR_START_TIMEOUT_MS: TIMEOUT_MS,
        // Far longer than the test's own timeout: a start bounded by it would fail the test.
        UPSTREAM_TIMEOUT_MS: '60000',
      });
      await startupProbe(avatar);
    });
    after(() => gw.close());
    beforeEach(() => avatar.reset());

    it('the roles named may delete (any case), tutor no longer may', async () => {
      expectAnswer(await post('/api/avatar/delete', 'tutor', multipart([['name', 'Zoe']])), 403, flask('{"msg":"Permission denied"}'));
      expect(avatar.requests).to.have.length(0);
      expect((await post('/api/avatar/delete', 'ADMIN', multipart([['name', 'Zoe']]))).status).to.equal(200);
      expect((await post('/api/avatar/delete', 'teacher', multipart([['name', 'bob_math']]))).status).to.equal(200);
      expect([...avatar.avatars.keys()]).to.deep.equal(['avatar_1']);
    });

    it('start answers 504 once AVATAR_START_TIMEOUT_MS passes without an answer', async () => {
      avatar.setMode('hang');
      expectAnswer(await post('/api/avatar/start', 'student', urlencoded([['avatar_name', 'bob_math']])), 504, flask('{"msg":"Avatar service timeout"}'));
      expect(avatar.requests).to.have.length(1);
    });
  });

  describe('a form body that stops flowing (BODY_IDLE_TIMEOUT_MS)', () => {
    let gw: TestGateway;
    before(async () => {
      avatar.reset();
      // Shorter than the 50 ms between the trickling client's bytes.
      gw = await startTestGateway({ AVATAR_SERVICE_URL: avatar.url, BODY_IDLE_TIMEOUT_MS: '20' });
      await startupProbe(avatar);
    });
    after(() => gw.close());

    it('start: a body trickling a byte every 50 ms gets 408 and the connection closed, nothing forwarded', async () => {
      const head = `POST /api/avatar/start HTTP/1.1\r\nHost: gateway\r\nAuthorization: ${bearer('student').authorization}\r\n`
        + 'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\navatar_name=bob_math';
      const { response, closedByServer } = await exchange(gw.url, head, { trickle: 'x', waitMs: 5000 });
      expect(closedByServer).to.equal(true);
      const [answer] = parseResponses(response);
      expect(answer.status).to.equal(408);
      expect(answer.headers.connection).to.deep.equal(['close']);
      expect(answer.body.toString()).to.equal(flask('{"msg":"Request body timeout"}'));
      expect(avatar.requests).to.have.length(0);
    });
  });

  describe('GET /api/tts/models from TTS_MODEL_INFO_PATH', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tts-models-'));
    const file = path.join(dir, 'model_info.json');
    const MODEL_INFO = {
      cosyvoice: { full_name: 'CosyVoice2', clone: true, status: 'active', license: 'Apache-2.0', timbres: ['ignored'], cur_timbre: 'ignored', sample_rate: 22050 },
      edgeTTS: { full_name: 'Microsoft Edge TTS', clone: false, status: 'active', license: 'MIT', timbres: ['zh-CN-XiaoxiaoNeural', 'en-US-AriaNeural'], cur_timbre: 'zh-CN-XiaoxiaoNeural' },
      bare: {},
      nulls: { clone: null, full_name: null, timbres: null, cur_timbre: null },
      truthy: { clone: 'yes', timbres: ['t'] },
      emptyList: { clone: [], timbres: ['t'], cur_timbre: 't' },
      语音: { full_name: '中文语音' },
    };
    // What the Flask original answered for MODEL_INFO (its loop, run by Python 3).
    const MODELS = '{"bare":{"clone":false,"cur_timbre":null,"full_name":"","license":"unknown","status":"unknown","timbres":[]},"cosyvoice":{"clone":true,"cur_timbre":null,"full_name":"CosyVoice2","license":"Apache-2.0","status":"active","timbres":null},"edgeTTS":{"clone":false,"cur_timbre":"zh-CN-XiaoxiaoNeural","full_name":"Microsoft Edge TTS","license":"MIT","status":"active","timbres":["zh-CN-XiaoxiaoNeural","en-US-AriaNeural"]},"emptyList":{"clone":[],"cur_timbre":"t","full_name":"","license":"unknown","status":"unknown","timbres":["t"]},"nulls":{"clone":null,"cur_timbre":null,"full_name":null,"license":"unknown","status":"unknown","timbres":null},"truthy":{"clone":"yes","cur_timbre":null,"full_name":"","license":"unknown","status":"unknown","timbres":null},"\\u8bed\\u97f3":{"clone":false,"cur_timbre":null,"full_name":"\\u4e2d\\u6587\\u8bed\\u97f3","license":"unknown","status":"unknown","timbres":[]}}';
    let gw: TestGateway;
    const models = () => send(`${gw.url}/api/tts/models?timeout=30000`, { headers: bearer('student') });

    before(async () => {
      gw = await startTestGateway({ AVATAR_SERVICE_URL: avatar.url, TTS_SERVICE_URL: tts.url, TTS_MODEL_INFO_PATH: file });
      await startupProbe(avatar);
      tts.requests.length = 0;
    });
    after(async () => {
      await gw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(() => fs.writeFileSync(file, JSON.stringify(MODEL_INFO)));

    it('answers each model with the defaults filled in, without calling the TTS service', async () => {
      expectAnswer(await models(), 200, flask(MODELS));
      expect(tts.requests).to.have.length(0);
    });

    it('models named like JavaScript properties (__proto__, constructor) are models like any other', async () => {
      fs.writeFileSync(file, '{"__proto__": {"full_name": "x"}, "constructor": {"clone": true}}');
      expectAnswer(await models(), 200, flask('{"__proto__":{"clone":false,"cur_timbre":null,"full_name":"x","license":"unknown","status":"unknown","timbres":[]},"constructor":{"clone":true,"cur_timbre":null,"full_name":"","license":"unknown","status":"unknown","timbres":null}}'));
    });

    it('a missing file: 404', async () => {
      fs.rmSync(file);
      expectAnswer(await models(), 404, flask('{"msg":"Model information file not found"}'));
    });

    for (const [what, content] of [['invalid JSON', '{"edgeTTS": {'], ['a JSON array', '["edgeTTS"]'], ['a model that is not an object', '{"edgeTTS": "on"}']]) {
      it(`${what}: 500 "Error reading TTS models"`, async () => {
        fs.writeFileSync(file, content);
        expectAnswer(await models(), 500, withErrorText('Error reading TTS models'));
      });
    }

    it('a file that changes is read again on the next request, no restart needed', async () => {
      expectAnswer(await models(), 200, flask(MODELS));
      fs.writeFileSync(file, JSON.stringify({ edgeTTS: { full_name: 'Edge', status: 'active' } }));
      expectAnswer(await models(), 200, flask('{"edgeTTS":{"clone":false,"cur_timbre":null,"full_name":"Edge","license":"unknown","status":"active","timbres":[]}}'));
      fs.writeFileSync(file, '{broken');
      expectAnswer(await models(), 500, withErrorText('Error reading TTS models'));
      // Replaced by a rename, as editors and deployment tools write it.
      fs.writeFileSync(`${file}.new`, JSON.stringify({ bare: {} }));
      fs.renameSync(`${file}.new`, file);
      expectAnswer(await models(), 200, flask('{"bare":{"clone":false,"cur_timbre":null,"full_name":"","license":"unknown","status":"unknown","timbres":[]}}'));
    });
  });
});
