// docs/troubleshooting.md and its Chinese twin show what the gateway really answers and logs. Each
// scenario is played against a real gateway on 127.0.0.1; its answer and its log lines (request ids
// written "...", timings and test ports left out) must appear in both documents exactly as written.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../config.js';
import { FLASK_HEADER, flaskClaims, signToken } from './auth.helpers.js';
import { startTestGateway, testEnv, TEST_SECRET, type TestGateway } from './helpers/gateway.js';
import { send, type RawRequest } from './helpers/http.js';
import { bearer } from './helpers/tokens.js';
import { json, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';

const DOCS = ['docs/troubleshooting.md', 'docs/zh/故障排查.md']
  .map((file) => ({ file, text: fs.readFileSync(new URL(`../${file}`, import.meta.url), 'utf8') }));

/** Every document has this fragment (a string as written, or a pattern). */
function expectDocumented(fragment: string | RegExp): void {
  for (const { file, text } of DOCS) {
    const found = typeof fragment === 'string' ? text.includes(fragment) : fragment.test(text);
    expect(found, `${file} shows ${fragment}`).to.equal(true);
  }
}

/** A log line as the documents show it: no timestamp, request id "...", cut before a timing. */
function asDocumented(line: string): string {
  return line
    .replace(/^\S+Z /, '')
    .replace(/requestId=[0-9a-f-]{36}/g, 'requestId=...')
    .replace(/ ms=[\d.]+.*$/, '');
}

/** The documented form of the gateway's first log line matching `pattern`, waiting for it. */
async function logLine(gw: TestGateway, pattern: RegExp): Promise<string> {
  await waitFor(() => gw.logs().split('\n').some((line) => pattern.test(line)), `a log line matching ${pattern}`);
  return asDocumented(gw.logs().split('\n').find((line) => pattern.test(line))!);
}

const body = (res: { body: string }) => res.body.replace(/\n$/, '');

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

describe('docs/troubleshooting.md (and zh) show what the gateway really answers and logs', () => {
  it('the configuration errors that stop start-up', () => {
    for (const env of [{ JWT_SECRET_KEY: '' }, { UPSTREAM_TIMEOUT_MS: '10s' }]) {
      let message = '';
      try {
        loadConfig(testEnv(env));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        message = error.message;
      }
      expect(message).not.to.equal('');
      expectDocumented(`avatar-gateway: configuration error: ${message}`);
    }
  });

  describe('the avatar, TTS and WebRTC services unreachable', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway({ BREAKER_FAILURE_THRESHOLD: '100', MAX_UPLOAD_BYTES: '1024' });
    });
    after(() => gw.close());

    it('the start-up warning', async () => {
      const line = await logLine(gw, /WARN upstream avatar is unreachable/);
      expectDocumented(line.replace(gw.config.upstreams.avatar.origin, 'http://localhost:8606'));
    });

    it('each route\'s answer, and the lines of a failed call', async () => {
      const calls: Array<[string, RawRequest, number]> = [
        ['/api/avatar/list', { headers: bearer('student') }, 500],
        ['/api/avatar/preview', { method: 'POST', headers: { ...bearer('student'), ...FORM }, body: 'avatar_name=Zoe' }, 500],
        ['/api/tts/models', { headers: bearer('student') }, 500],
        ['/api/webrtc/offer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }, 502],
      ];
      for (const [url, request, status] of calls) {
        const res = await send(gw.url + url, request);
        expect(res.status, url).to.equal(status);
        expectDocumented(`\`${status} ${body(res)}\``);
      }
      expectDocumented(await logLine(gw, /WARN upstream failure .* upstream=avatar kind=connect/));
      expectDocumented(await logLine(gw, /INFO request .* path=\/api\/avatar\/list status=500/));
    });

    it('every token refusal, with its status and message', async () => {
      const config = loadConfig(testEnv());
      const claims = flaskClaims(config);
      const now = Math.floor(Date.now() / 1000);
      const signed = (payload: Record<string, unknown>, header = FLASK_HEADER) => `Bearer ${signToken(header, payload, TEST_SECRET)}`;
      const refusals: Array<string | undefined> = [
        undefined,
        'Token abc',
        'Bearer',
        'Bearer undefined',
        `Bearer ${signToken(FLASK_HEADER, claims, 'not-the-flask-secret')}`,
        signed({ ...claims, exp: now - 60 }),
        signed({ ...claims, nbf: now + 3600 }),
        signed(claims, { alg: 'HS512', typ: 'JWT' }),
        signed({ ...claims, type: 'refresh' }),
        signed({ ...claims, sub: undefined }),
      ];
      for (const authorization of refusals) {
        const res = await send(`${gw.url}/api/avatar/list`, authorization === undefined ? {} : { headers: { Authorization: authorization } });
        expect(res.status, authorization).to.be.oneOf([401, 422]);
        expectDocumented(`${res.status} \`${JSON.parse(res.body).msg}\``);
      }
      // Three parts that do not decode: the reason is free-form, the document names examples of it.
      const undecodable = await send(`${gw.url}/api/avatar/list`, { headers: { Authorization: 'Bearer a.b.c' } });
      expect(undecodable.status).to.equal(422);
      expectDocumented(`\`${JSON.parse(undecodable.body).msg}\``);

      const student = await send(`${gw.url}/api/avatar/delete`, { method: 'POST', headers: { ...bearer('student'), ...FORM }, body: 'name=Zoe' });
      expect(student.status).to.equal(403);
      expectDocumented(`${student.status} \`${JSON.parse(student.body).msg}\``);
    });

    it('413, and its access line', async () => {
      const res = await send(`${gw.url}/api/avatar/add`, {
        method: 'POST',
        headers: { ...bearer('tutor'), 'Content-Type': 'multipart/form-data; boundary=x' },
        body: Buffer.alloc(2048, 'a'),
      });
      expect(res.status).to.equal(413);
      expectDocumented(`413 "${JSON.parse(res.body).msg}"`);
      expectDocumented(await logLine(gw, /INFO request .* path=\/api\/avatar\/add status=413/));
    });

    it('400 for a multipart body without a boundary', async () => {
      const res = await send(`${gw.url}/api/avatar/preview`, {
        method: 'POST',
        headers: { ...bearer('student'), 'Content-Type': 'multipart/form-data' },
        body: 'avatar_name=Zoe',
      });
      expect(res.status).to.equal(400);
      expectDocumented(`\`${JSON.parse(res.body).msg}\``);
    });
  });

  describe('the circuit open', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway({ BREAKER_FAILURE_THRESHOLD: '1', BREAKER_COOLDOWN_MS: '60000' });
    });
    after(() => gw.close());

    it('503 busy, and the line that names the circuit', async () => {
      // The first connection failure (the start-up probe or this call) opens the circuit.
      let res = await send(`${gw.url}/api/avatar/list`, { headers: bearer('student') });
      if (res.status === 500) res = await send(`${gw.url}/api/avatar/list`, { headers: bearer('student') });
      expect(res.status).to.equal(503);
      expectDocumented(body(res));
      const line = await logLine(gw, /kind=circuit_open/);
      expectDocumented(line.slice(line.indexOf('kind=')));
    });
  });

  describe('an avatar service that holds its calls', () => {
    let upstream: TestUpstream;
    const held: http.ServerResponse[] = [];
    let gw: TestGateway;
    before(async () => {
      // The start-up probe (GET /) is answered; the list is held until the test lets it go.
      upstream = await startUpstream((req, res) => (req.url === '/' ? res.end('{}') : held.push(res)));
      gw = await startTestGateway({
        AVATAR_SERVICE_URL: upstream.url,
        UPSTREAM_MAX_IN_FLIGHT: '1',
        UPSTREAM_QUEUE_SIZE: '1',
        UPSTREAM_QUEUE_TIMEOUT_MS: '200',
        UPSTREAM_TIMEOUT_MS: '1000',
      });
      await waitFor(() => gw.logs().includes('upstream avatar answers'), 'the start-up probe of the avatar service');
    });
    after(async () => {
      for (const res of held) res.end('{}');
      await gw.close();
      await upstream.close();
    });

    it('503 busy when the queue is full or the wait too long, 504 when the service stays silent', async () => {
      const first = send(`${gw.url}/api/avatar/list`, { headers: bearer('student') });
      await waitFor(() => held.length === 1, 'the first call to reach the avatar service');
      // One of these two waits for the slot (and gives up after 200 ms), the other finds the queue full.
      const [second, third] = await Promise.all([1, 2].map(() => send(`${gw.url}/api/avatar/list`, { headers: bearer('student') })));
      expect([second.status, third.status]).to.deep.equal([503, 503]);
      expectDocumented(await logLine(gw, /kind=busy error=avatar service busy: queue full/).then((line) => line.slice(line.indexOf('kind='))));
      const waited = await logLine(gw, /kind=busy error=avatar service busy: waited/);
      expectDocumented(new RegExp(waited.slice(waited.indexOf('kind=')).replace(/\d+/, '\\d+')));

      const timedOut = await first;
      expect(timedOut.status).to.equal(504);
      expectDocumented(`\`504 ${body(timedOut)}\``);
      expectDocumented(await logLine(gw, /WARN upstream failure .* kind=timeout/));
      expectDocumented(await logLine(gw, /INFO request .* path=\/api\/avatar\/list status=504/));
    });
  });

  describe('an avatar service answering a shape the original also failed on', () => {
    let upstream: TestUpstream;
    let gw: TestGateway;
    before(async () => {
      upstream = await startUpstream(json({ status: 'success', avatars: null }));
      gw = await startTestGateway({ AVATAR_SERVICE_URL: upstream.url });
    });
    after(async () => {
      await gw.close();
      await upstream.close();
    });

    it('500 Internal Server Error, and its line in logs/error.log', async () => {
      const res = await send(`${gw.url}/api/avatar/list`, { headers: bearer('student') });
      expect(res.status).to.equal(500);
      expectDocumented(`\`500 ${body(res)}\``);
      const errorLog = path.join(gw.config.log.dir, 'error.log');
      await waitFor(() => fs.existsSync(errorLog) && fs.readFileSync(errorLog, 'utf8').includes('unhandled error'), 'the error in error.log');
      const entry = JSON.parse(fs.readFileSync(errorLog, 'utf8').trim().split('\n').at(-1)!);
      expect(entry.stack).to.be.a('string');
      expectDocumented(JSON.stringify({ error: entry.error, level: entry.level, message: entry.message }).slice(1, -1));
    });
  });
});
