// POST /api/avatar/add end to end (api.md, "POST /api/avatar/add", "Forms", "Limits, load and
// shutdown"): the real gateway in front of the simulated avatar service (sim/avatarService.ts, which
// records each file's size and sha256 as it streams in), both on 127.0.0.1, over sockets.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import { generateFile, uploadAvatar } from '../bench/clients/upload.js';
import { startGatewayProcess } from '../bench/procs/processes.js';
import { startSampler } from '../bench/procs/sampler.js';
import { startAvatarService, type SimulatedAvatarService } from '../sim/avatarService.js';
import type { RecordedRequest } from '../sim/types.js';
import { signToken, FLASK_HEADER } from './auth.helpers.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';
import { bearer } from './helpers/tokens.js';
import { startUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1024 * 1024;
const ADD = '/api/avatar/add';
const TUTOR = bearer('tutor');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const flask = (json: string) => `${json}\n`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Post {
  headers?: Record<string, string>;
  /** Sent whole with its Content-Length, or streamed (chunked unless a content-length header is given). */
  body?: Buffer | string | Iterable<Buffer> | AsyncIterable<Buffer>;
}

// node:http with no agent: one connection per request, so a closed connection is this request's.
// An answer that comes before the body is through ends the sending: the answer is the result.
function post(base: string, { headers = {}, body = '' }: Post, path = ADD): Promise<Answer> {
  const whole = typeof body === 'string' || Buffer.isBuffer(body);
  const req = http.request(`${base}${path}`, {
    method: 'POST',
    agent: false,
    headers: whole ? { 'content-length': String(Buffer.byteLength(body)), ...headers } : headers,
  });
  const answered = new Promise<Answer>((resolve, reject) => {
    // A request error once the answer has begun is the sending cut short after it (EPIPE).
    let answering = false;
    req.once('response', (res) => {
      answering = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.once('error', reject);
    });
    req.on('error', (error) => {
      if (!answering) reject(error);
    });
  });
  if (whole) req.end(body);
  else pipeline(Readable.from(body), req).catch(() => undefined);
  return answered;
}

type Part =
  | { name: string; value: string | Buffer; contentType?: string }
  | { name: string; filename: string; contentType: string; data: Buffer };

const CLIENT_BOUNDARY = '----WebKitFormBoundaryClient0123456789';

function partHead(part: Part, boundary: string): string {
  if ('value' in part) {
    const type = part.contentType ? `\r\nContent-Type: ${part.contentType}` : '';
    return `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"${type}\r\n\r\n`;
  }
  return `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename}"\r\n`
    + `Content-Type: ${part.contentType}\r\n\r\n`;
}

/** A multipart/form-data body as browsers write it (raw UTF-8 in the header parameters). */
function multipart(parts: Part[], boundary = CLIENT_BOUNDARY): { headers: Record<string, string>; body: Buffer } {
  const content = (part: Part) => ('value' in part ? (typeof part.value === 'string' ? Buffer.from(part.value) : part.value) : part.data);
  const pieces = parts.flatMap((part) => [Buffer.from(partHead(part, boundary)), content(part), Buffer.from('\r\n')]);
  return {
    headers: { ...TUTOR, 'content-type': `multipart/form-data; boundary=${boundary}` },
    body: Buffer.concat([...pieces, Buffer.from(`--${boundary}--\r\n`)]),
  };
}

function urlencoded(body: string, headers: Record<string, string> = TUTOR): Post {
  return { headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body };
}

const video = (bytes = 64 * 1024, filename = 'lesson.mp4'): Extract<Part, { filename: string }> =>
  ({ name: 'prompt_face', filename, contentType: 'video/mp4', data: randomBytes(bytes) });

/** FastAPI's 422 for missing form fields, as the gateway wraps it (keys sorted by jsonify). */
const missing = (...names: string[]) => flask(JSON.stringify({
  detail: { detail: names.map((name) => ({ input: null, loc: ['body', name], msg: 'Field required', type: 'missing' })) },
  msg: 'Avatar creation failed',
}));

const PERMISSION_DENIED = flask('{"msg":"Permission denied"}');
const INVALID_NAME = flask('{"msg":"Invalid avatar name"}');
const TOO_LARGE = flask('{"msg":"Request body too large"}');
const MALFORMED = flask('{"msg":"Malformed form data"}');
const BODY_TIMEOUT = flask('{"msg":"Request body timeout"}');

describe('POST /api/avatar/add (real gateway, simulated avatar service)', function () {
  this.timeout(30_000);
  let sim: SimulatedAvatarService;
  const gateways: TestGateway[] = [];

  /** A gateway in front of the simulator; its start-up probe (GET /) is kept out of the records. */
  async function gatewayWith(env: Record<string, string> = {}): Promise<TestGateway> {
    const gw = await startTestGateway({
      AVATAR_SERVICE_URL: sim.url,
      // Failure rows follow each other here: the breaker must not turn them into 503s.
      BREAKER_FAILURE_THRESHOLD: '1000',
      ...env,
    });
    gateways.push(gw);
    await waitFor(() => sim.requests.some((r) => r.url === '/'), 'the start-up probe');
    sim.requests.length = 0;
    return gw;
  }

  const adds = () => sim.requests.filter((r) => r.url === '/avatar/add');
  const onlyAdd = (): RecordedRequest => {
    expect(adds()).to.have.length(1);
    return adds()[0];
  };
  /** Nothing reached the service, and nothing is left open there. */
  const nothingForwarded = async (abortedBefore = sim.aborted()) => {
    await waitFor(() => sim.inFlight() === 0, 'no request open at the avatar service');
    expect(adds()).to.deep.equal([]);
    expect(sim.aborted()).to.equal(abortedBefore);
  };
  /** The upload reached the service and was cut before its end: aborted, not answered, not left open. */
  const upstreamAborted = async (abortedBefore: number) => {
    await waitFor(() => sim.aborted() === abortedBefore + 1 && sim.inFlight() === 0, 'the upstream request aborted');
    expect(adds()).to.deep.equal([]);
  };

  let gw: TestGateway;
  before(async () => {
    sim = await startAvatarService();
    gw = await gatewayWith();
  });
  after(async () => {
    for (const gateway of gateways) await gateway.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  describe('fields and files forwarded', () => {
    it('forwards the allowed fields (first value, empty ones too) and both files unchanged, in a new multipart body', async () => {
      const face = video(300 * 1024, '头像 视频.MP4');
      const voice = { name: 'prompt_voice', filename: '声音样本.wav', contentType: 'audio/x-wav', data: randomBytes(40 * 1024) };
      const form = multipart([
        { name: 'name', value: 'alice_zh' },
        { name: 'ref_text', value: 'the frontend sends this; the service does not want it' },
        { name: 'avatar_blur', value: 'true' },
        { name: 'support_clone', value: 'false' },
        { name: 'timbre', value: '' },
        { name: 'name', value: 'second_value_ignored' },
        { name: 'tts_model', value: 'edgeTTS' },
        face,
        { name: 'prompt_face', filename: 'second.mp4', contentType: 'video/mp4', data: randomBytes(1000) },
        { name: 'other_file', filename: 'x.bin', contentType: 'application/octet-stream', data: randomBytes(1000) },
        { name: 'avatar_model', value: 'wav2lip' },
        { name: 'description', value: '数学老师 “Ada”' },
        voice,
      ]);
      const res = await post(gw.url, form);
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.equal('application/json');
      expect(res.body).to.equal('{"status":"success","message":"Avatar created","image_path":"data/avatars/alice_zh/full_imgs/00000000.png"}');

      const seen = onlyAdd();
      expect(seen.method).to.equal('POST');
      expect(seen.encoding).to.equal('multipart/form-data');
      expect(String(seen.headers['content-type'])).to.match(/^multipart\/form-data; boundary=\S+$/).and.not.include(CLIENT_BOUNDARY);
      expect(seen.headers.authorization).to.equal(undefined);
      expect(seen.fields).to.have.deep.members([
        ['name', 'alice_zh'], ['avatar_blur', 'true'], ['support_clone', 'false'], ['timbre', ''],
        ['tts_model', 'edgeTTS'], ['avatar_model', 'wav2lip'], ['description', '数学老师 “Ada”'],
      ]).and.have.length(7);
      expect(seen.files).to.deep.equal([
        { field: 'prompt_face', filename: face.filename, contentType: 'video/mp4', size: face.data.length, sha256: sha256(face.data) },
        { field: 'prompt_voice', filename: voice.filename, contentType: 'audio/x-wav', size: voice.data.length, sha256: sha256(voice.data) },
      ]);
      expect(sim.avatars.get('alice_zh')).to.deep.include({ description: '数学老师 “Ada”', tts_model: 'edgeTTS', avatar_model: 'wav2lip' });
    });

    it('sends urlencoded, in the original order, when no file goes: prompt_face="" and an empty file input are no files', async () => {
      const form = multipart([
        { name: 'description', value: '' },
        { name: 'prompt_face', value: '' },
        { name: 'name', value: 'bob' },
        { name: 'ref_text', value: 'dropped' },
        // An empty file input: browsers send filename="" and application/octet-stream, no bytes.
        { name: 'prompt_voice', filename: '', contentType: 'application/octet-stream', data: Buffer.alloc(0) },
        { name: 'prompt_face', filename: '', contentType: 'application/octet-stream', data: Buffer.from('ignored') },
        { name: 'support_clone', value: 'true' },
      ]);
      const res = await post(gw.url, form);
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(missing('prompt_face'));
      const seen = onlyAdd();
      expect(seen.encoding).to.equal('application/x-www-form-urlencoded');
      expect(seen.fields).to.deep.equal([['name', 'bob'], ['support_clone', 'true'], ['description', '']]);
      expect(seen.files).to.deep.equal([]);
    });

    it('reads urlencoded forms alike; a query parameter or a JSON body is no field', async () => {
      let res = await post(gw.url, urlencoded('ref_text=x&name=carol+c%C3%A9&name=dup&timbre=&avatar_blur'));
      expect(res.status).to.equal(400);
      expect(onlyAdd().fields).to.deep.equal([['name', 'carol cé'], ['avatar_blur', ''], ['timbre', '']]);

      sim.reset();
      res = await post(gw.url, { headers: { ...TUTOR, 'content-type': 'application/json' }, body: '{"name":"dave"}' }, `${ADD}?name=dave`);
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(missing('name', 'prompt_face'));
      expect(onlyAdd().fields ?? []).to.deep.equal([]);
    });

    it('a U+FFFD the user typed is text like any other: forwarded unchanged, multipart or urlencoded', async () => {
      const description = 'the \ufffd sign';
      let res = await post(gw.url, multipart([{ name: 'name', value: 'replacement' }, { name: 'description', value: description }, video()]));
      expect(res.status).to.equal(200);
      expect(onlyAdd().fields).to.deep.equal([['name', 'replacement'], ['description', description]]);

      sim.reset();
      res = await post(gw.url, urlencoded(`name=replacement&description=${encodeURIComponent(description)}`));
      expect(res.body).to.equal(missing('prompt_face'));
      expect(onlyAdd().fields).to.deep.equal([['name', 'replacement'], ['description', description]]);
    });

    it('a text part that declares charset=utf-8 (.NET clients do) is read in it, as before', async () => {
      const res = await post(gw.url, multipart([{ name: 'name', value: 'declared' }, { name: 'description', value: '数学老师', contentType: 'text/plain; charset=utf-8' }, video()]));
      expect(res.status).to.equal(200);
      expect(onlyAdd().fields).to.deep.equal([['name', 'declared'], ['description', '数学老师']]);
    });

    it('a filename*= (RFC 5987, older python-requests) passes as decoded, like a raw UTF-8 filename', async () => {
      const face = video();
      const head = `--${CLIENT_BOUNDARY}\r\nContent-Disposition: form-data; name="prompt_face"; filename*=UTF-8''%E5%A4%B4%E5%83%8F.mp4\r\n`
        + 'Content-Type: video/mp4\r\n\r\n';
      const { headers, body } = multipart([{ name: 'name', value: 'rfc5987' }]);
      const res = await post(gw.url, { headers, body: Buffer.concat([Buffer.from(head), face.data, Buffer.from('\r\n'), body]) });
      expect(res.status).to.equal(200);
      expect(onlyAdd().files.map((f) => f.filename)).to.deep.equal(['头像.mp4']);
    });

    it('a missing or empty name is forwarded and the service\'s 422 comes back as 400 with its detail', async () => {
      const face = video();
      let res = await post(gw.url, multipart([face]));
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(missing('name'));
      expect(onlyAdd().files.map((f) => f.sha256)).to.deep.equal([sha256(face.data)]);

      sim.reset();
      res = await post(gw.url, multipart([{ name: 'name', value: '' }, face]));
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(missing('name'));
      expect(onlyAdd().fields).to.deep.equal([['name', '']]);
    });

    for (const name of ['../x', '..', '.', 'a/b', 'a\\b', 'x\u0000y', 'tab\there', 'n'.repeat(129)]) {
      it(`refuses the name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}... (${name.length})` : name)} with nothing forwarded`, async () => {
        const res = await post(gw.url, multipart([{ name: 'name', value: name }, video()]));
        expect(res.status).to.equal(400);
        expect(res.body).to.equal(INVALID_NAME);
        await nothingForwarded();
      });
    }

    it('refuses a dangerous name that comes after the file: the upload already on its way is aborted upstream', async () => {
      const abortedBefore = sim.aborted();
      const res = await post(gw.url, multipart([video(2 * MiB), { name: 'name', value: '../../etc' }]));
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(INVALID_NAME);
      await upstreamAborted(abortedBefore);
    });

    it('refuses a dangerous name in an urlencoded form; a repeated one after a good first value is ignored', async () => {
      let res = await post(gw.url, urlencoded('name=..%2F..%2Fdata'));
      expect(res.body).to.equal(INVALID_NAME);
      await nothingForwarded();
      res = await post(gw.url, urlencoded('name=good&name=..%2Fbad'));
      expect(res.body).to.equal(missing('prompt_face'));
      expect(onlyAdd().fields).to.deep.equal([['name', 'good']]);
    });
  });

  describe('the role comes first', () => {
    /** Headers and the first bytes of a body declared huge: the answer must come without the rest. */
    async function refusedBeforeTheBody(base: string, headers: Record<string, string>): Promise<Answer> {
      const req = http.request(`${base}${ADD}`, {
        method: 'POST',
        agent: false,
        headers: { ...headers, 'content-type': `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, 'content-length': String(1024 * MiB) },
      });
      req.on('error', () => undefined);
      const answer = new Promise<Answer>((resolve) => {
        req.once('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        });
      });
      req.write(partHead({ name: 'name', value: 'x' }, CLIENT_BOUNDARY));
      req.write(`x\r\n${partHead(video(), CLIENT_BOUNDARY)}`);
      req.write(randomBytes(64 * 1024));
      try {
        return await answer;
      } finally {
        req.destroy();
      }
    }

    for (const [who, headers] of [
      ['a student', bearer('student')],
      ['a token without a role claim', { authorization: `Bearer ${signToken(FLASK_HEADER, { fresh: false, iat: Math.floor(Date.now() / 1000), jti: 'j', type: 'access', sub: 'nobody@example.com', nbf: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 }, TEST_SECRET)}` }],
    ] as const) {
      it(`${who} gets 403 before the body is read, and nothing is forwarded`, async () => {
        const res = await refusedBeforeTheBody(gw.url, headers);
        expect(res.status).to.equal(403);
        expect(res.body).to.equal(PERMISSION_DENIED);
        await nothingForwarded();
      });
    }

    it('AVATAR_MANAGER_ROLES names the roles allowed (case-insensitive)', async () => {
      const admins = await gatewayWith({ AVATAR_MANAGER_ROLES: 'Admin,staff' });
      const tutor = await refusedBeforeTheBody(admins.url, TUTOR);
      expect(tutor.status).to.equal(403);
      expect(tutor.body).to.equal(PERMISSION_DENIED);
      await nothingForwarded();

      const face = video();
      const admin = await post(admins.url, { ...multipart([{ name: 'name', value: 'by_admin' }, face]), headers: { ...multipart([]).headers, ...bearer('ADMIN') } });
      expect(admin.status).to.equal(200);
      expect(onlyAdd().files[0].sha256).to.equal(sha256(face.data));
    });
  });

  describe('answers of the avatar service', () => {
    const upload = () => post(gw.url, multipart([{ name: 'name', value: 'eve' }, video(256 * 1024)]));

    for (const [mode, status, detail] of [
      ['status-error', 200, { message: 'CUDA out of memory', status: 'error' }],
      ['no-status', 200, { image_path: 'data/avatars/eve/full_imgs/00000000.png', message: 'Avatar created' }],
      ['status-500', 500, { detail: 'Avatar service internal error' }],
      ['status-503', 503, { detail: 'GPU busy, try again later' }],
    ] as const) {
      it(`any other JSON object (${mode}, ${status}) answers 400 with it as detail, and is not retried`, async () => {
        sim.setMode(mode);
        const res = await upload();
        expect(res.status).to.equal(400);
        expect(res.body).to.equal(flask(JSON.stringify({ detail, msg: 'Avatar creation failed' })));
        onlyAdd();
      });
    }

    it('JSON that is not an object answers 500 Internal Server Error', async () => {
      sim.setMode('json-array');
      const res = await upload();
      expect(res.status).to.equal(500);
      expect(res.body).to.equal(flask('{"msg":"Internal Server Error"}'));
      onlyAdd();
    });

    for (const [mode, raw] of [
      ['html', '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n'],
      ['error', 'Internal Server Error'],
    ] as const) {
      it(`a body that is not JSON (${mode}) answers 500 with the raw text`, async () => {
        sim.setMode(mode);
        const res = await upload();
        expect(res.status).to.equal(500);
        expect(res.body).to.equal(flask(JSON.stringify({ msg: 'Invalid JSON response from avatar service', raw })));
        onlyAdd();
      });
    }

    for (const mode of ['reset', 'garbage'] as const) {
      it(`a connection failure (${mode}) answers 500 "Error forwarding", after exactly one upstream request`, async () => {
        sim.setMode(mode);
        const res = await upload();
        expect(res.status).to.equal(500);
        const body = JSON.parse(res.body);
        expect(Object.keys(body)).to.deep.equal(['error', 'msg']);
        expect(body.msg).to.equal('Error forwarding to avatar service');
        expect(body.error).to.be.a('string').and.match(/^avatar service: /).and.not.include('127.0.0.1');
        onlyAdd();
        await waitFor(() => sim.inFlight() === 0, 'no request left open');
      });
    }

    describe('a service that answers or fails before the upload is through', () => {
      /** A gateway in front of an ad-hoc service; the requests it saw and how far it read each. */
      async function gatewayBefore(handler: http.RequestListener) {
        const service = await startUpstream(handler);
        const front = await startTestGateway({ AVATAR_SERVICE_URL: service.url, BREAKER_FAILURE_THRESHOLD: '1000' });
        gateways.push(front);
        await waitFor(() => service.requests.some((r) => r.url === '/'), 'the start-up probe');
        service.requests.length = 0;
        return { service, front };
      }
      const bigUpload = (base: string) => post(base, {
        headers: multipart([]).headers,
        body: (function* () {
          yield Buffer.from(`${partHead({ name: 'name', value: 'early' }, CLIENT_BOUNDARY)}early\r\n${partHead(video(), CLIENT_BOUNDARY)}`);
          for (let i = 0; i < 256; i++) yield randomBytes(64 * 1024);
          yield Buffer.from(`\r\n--${CLIENT_BOUNDARY}--\r\n`);
        })(),
      });

      it('an answer before the body is read (FastAPI refusing at once) is the answer; the rest is not forwarded', async () => {
        let closed = false;
        const { service, front } = await gatewayBefore((req, res) => {
          if (req.url === '/') return void res.end();
          res.once('close', () => { closed = true; });
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"detail":"The uploaded video is empty"}');
        });
        try {
          const res = await bigUpload(front.url);
          expect(res.status).to.equal(400);
          expect(res.body).to.equal(flask('{"detail":{"detail":"The uploaded video is empty"},"msg":"Avatar creation failed"}'));
          expect(service.requests.filter((r) => r.url === '/avatar/add')).to.have.length(1);
          await waitFor(() => closed, 'the upstream exchange closed');
        } finally {
          await service.close();
        }
      });

      it('a connection cut mid-upload answers 500 "Error forwarding", after exactly one upstream request', async () => {
        const { service, front } = await gatewayBefore((req, res) => {
          if (req.url === '/') return void res.end();
          let read = 0;
          req.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > MiB) req.socket.destroy();
          });
        });
        try {
          const res = await bigUpload(front.url);
          expect(res.status).to.equal(500);
          const body = JSON.parse(res.body);
          expect(Object.keys(body)).to.deep.equal(['error', 'msg']);
          expect(body.msg).to.equal('Error forwarding to avatar service');
          expect(body.error).to.match(/^avatar service: /);
          expect(service.requests.filter((r) => r.url === '/avatar/add')).to.have.length(1);
          expect(front.logs()).not.to.include('unhandled error');
        } finally {
          await service.close();
        }
      });
    });

    it('a service that is down answers 500 "Error forwarding" with the reason', async () => {
      sim.setMode('down');
      try {
        const res = await upload();
        expect(res.status).to.equal(500);
        expect(res.body).to.equal(flask('{"error":"avatar service: connection refused","msg":"Error forwarding to avatar service"}'));
      } finally {
        sim.setMode('normal');
      }
    });

    it('no answer within AVATAR_ADD_TIMEOUT_MS answers 504 naming the limit in minutes, the call cut', async () => {
      // 250 ms is 0.0041666... minutes: the message prints three significant digits, never "0".
      const quick = await gatewayWith({ AVATAR_ADD_TIMEOUT_MS: '250' });
      sim.setMode('hang');
      const res = await post(quick.url, multipart([{ name: 'name', value: 'slow' }, video()]));
      expect(res.status).to.equal(504);
      expect(res.body).to.equal(flask('{"msg":"Avatar creation timeout (exceeded 0.00417 minutes)"}'));
      onlyAdd();
      await waitFor(() => sim.inFlight() === 0, 'the hanging call closed');
    });
  });

  describe('streaming', () => {
    it('streams a 256 MiB upload through a gateway process whose RSS grows by less than 64 MiB; the sha256 matches upstream', async function () {
      this.timeout(120_000);
      const file = generateFile(256 * MiB);
      // A process of its own, so that its memory is the gateway's alone (not this test runner's).
      const child = await startGatewayProcess({ JWT_SECRET_KEY: TEST_SECRET, AVATAR_SERVICE_URL: sim.url, TTS_SERVICE_URL: sim.url, WEBRTC_SERVICE_URL: sim.url });
      try {
        await waitFor(() => sim.requests.some((r) => r.url === '/'), 'the start-up probe');
        // Warmed up first (modules loaded, heap and pools grown to their working size), so the
        // growth measured is the upload's.
        expect((await uploadAvatar(`${child.url}${ADD}`, generateFile(16 * MiB), 'warm_up', TUTOR)).status).to.equal(200);
        sim.reset();

        const sampler = startSampler(child.pid, 20);
        const result = await uploadAvatar(`${child.url}${ADD}`, file, 'big_one', TUTOR);
        const rss = sampler.stop();
        expect(result.status, result.body).to.equal(200);
        expect(onlyAdd().files).to.deep.equal([{ field: 'prompt_face', filename: 'big_one.mp4', contentType: 'video/mp4', size: file.sizeBytes, sha256: file.sha256 }]);
        expect(rss.count).to.be.above(2);
        expect(rss.peakRssBytes - rss.first!.rssBytes, 'RSS growth').to.be.below(64 * MiB);
      } finally {
        await child.stop();
      }
    });

    it('a slow upstream slows the client: the gateway never reads more than a few MiB ahead, nor times out a flowing upload', async () => {
      // The service takes each chunk only after a pause: a reader slower than the client.
      let upstreamRead = 0;
      const slowService = await startUpstream((req, res) => {
        req.on('data', (chunk: Buffer) => {
          upstreamRead += chunk.length;
          req.pause();
          setTimeout(() => req.resume(), 0);
        });
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"success"}'));
      });
      // The upload takes seconds: a timeout bounds stalls, not an upload that keeps flowing.
      const slowGateway = await startTestGateway({ AVATAR_SERVICE_URL: slowService.url, AVATAR_ADD_TIMEOUT_MS: '1000' });
      gateways.push(slowGateway);
      try {
        const file = generateFile(48 * MiB);
        let aheadMost = 0;
        const result = await uploadAvatar(`${slowGateway.url}${ADD}`, file, 'paced', TUTOR, (sent) => {
          aheadMost = Math.max(aheadMost, sent - upstreamRead);
        });
        expect(result.status).to.equal(200);
        expect(upstreamRead).to.be.above(file.sizeBytes);
        // What fills up is the socket buffers of both hops (about 5 MiB each here: Linux grows them up
        // to net.ipv4.tcp_rmem) and the streams' high-water marks, nothing proportional to the upload;
        // a gateway reading ahead would show most of the 48 MiB.
        expect(aheadMost, 'bytes written by the client but not yet read by the service').to.be.below(20 * MiB);
      } finally {
        await slowService.close();
      }
    });

    it('a client that disconnects mid-upload aborts the upstream request; the gateway keeps serving', async () => {
      const abortedBefore = sim.aborted();
      const req = http.request(`${gw.url}${ADD}`, {
        method: 'POST',
        agent: false,
        headers: { ...TUTOR, 'content-type': `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, 'content-length': String(512 * MiB) },
      });
      req.on('error', () => undefined);
      req.write(`${partHead({ name: 'name', value: 'gone' }, CLIENT_BOUNDARY)}gone\r\n${partHead(video(), CLIENT_BOUNDARY)}`);
      req.write(randomBytes(4 * MiB));
      await waitFor(() => sim.inFlight() === 1, 'the upload under way at the service');
      req.destroy();
      await upstreamAborted(abortedBefore);

      const face = video();
      const res = await post(gw.url, multipart([{ name: 'name', value: 'after_the_cut' }, face]));
      expect(res.status).to.equal(200);
      expect(onlyAdd().files[0].sha256).to.equal(sha256(face.data));
    });

    it('a client that disconnects while the service is still creating the avatar cancels that call', async () => {
      sim.setLatency(60_000);
      const req = http.request(`${gw.url}${ADD}`, { method: 'POST', agent: false, headers: multipart([]).headers });
      req.on('error', () => undefined);
      req.end(multipart([{ name: 'name', value: 'impatient' }, video()]).body);
      await waitFor(() => adds().length === 1, 'the whole upload received by the service');
      expect(sim.inFlight()).to.equal(1);
      req.destroy();
      await waitFor(() => sim.inFlight() === 0, 'the call cancelled at the service');
    });

    it('an upload sent after "Expect: 100-continue" (curl does so) goes through', async () => {
      const face = video(2 * MiB);
      const { headers, body } = multipart([{ name: 'name', value: 'curl_user' }, face]);
      const res = await new Promise<Answer>((resolve, reject) => {
        const req = http.request(`${gw.url}${ADD}`, {
          method: 'POST', agent: false, headers: { ...headers, expect: '100-continue', 'content-length': String(body.length) },
        });
        req.once('continue', () => req.end(body));
        req.once('response', (response) => {
          let text = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).once('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: text }));
        });
        req.once('error', reject);
      });
      expect(res.status).to.equal(200);
      expect(onlyAdd().files[0].sha256).to.equal(sha256(face.data));
    });

    it('a client that disconnects before any file opens no upstream request at all', async () => {
      const addsBefore = adds().length;
      const abortedBefore = sim.aborted();
      const req = http.request(`${gw.url}${ADD}`, {
        method: 'POST',
        agent: false,
        headers: { ...TUTOR, 'content-type': `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, 'content-length': String(MiB) },
      });
      req.on('error', () => undefined);
      await new Promise<void>((resolve) => req.write(`${partHead({ name: 'name', value: 'half' }, CLIENT_BOUNDARY)}half\r\n`, () => resolve()));
      req.destroy();
      // The gateway has seen the close once it answers another request on a fresh connection.
      expect((await post(gw.url, urlencoded('name=next'))).status).to.equal(400);
      await waitFor(() => sim.inFlight() === 0, 'no request open at the avatar service');
      // The one add since is that request's own.
      expect(adds().slice(addsBefore).map((r) => r.fields)).to.deep.equal([[['name', 'next']]]);
      expect(sim.aborted()).to.equal(abortedBefore);
    });
  });

  describe('a client body that stops flowing (BODY_IDLE_TIMEOUT_MS)', () => {
    const IDLE_MS = 300;
    let idle: TestGateway;
    before(async () => {
      idle = await gatewayWith({ BODY_IDLE_TIMEOUT_MS: String(IDLE_MS) });
    });

    it('a client that goes silent mid-file gets 408 (Connection: close); the upload under way is aborted upstream', async () => {
      const abortedBefore = sim.aborted();
      const res = await post(idle.url, {
        headers: multipart([]).headers,
        body: (async function* () {
          yield Buffer.from(`${partHead({ name: 'name', value: 'silent' }, CLIENT_BOUNDARY)}silent\r\n${partHead(video(), CLIENT_BOUNDARY)}`);
          yield randomBytes(256 * 1024);
          // Then nothing more, the connection held open.
          await new Promise(() => {});
        })(),
      });
      expect(res.status).to.equal(408);
      expect(res.body).to.equal(BODY_TIMEOUT);
      expect(res.headers.connection).to.equal('close');
      await upstreamAborted(abortedBefore);
    });

    it('a service reading nothing for three idle timeouts pauses the gateway, not the client: the upload completes', async () => {
      let upstreamRead = 0;
      const pausing = await startUpstream((req, res) => {
        req.once('data', () => {
          req.pause();
          setTimeout(() => req.resume(), 3 * IDLE_MS);
        });
        req.on('data', (chunk: Buffer) => { upstreamRead += chunk.length; });
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"success"}'));
      });
      const front = await startTestGateway({ AVATAR_SERVICE_URL: pausing.url, BODY_IDLE_TIMEOUT_MS: String(IDLE_MS) });
      gateways.push(front);
      try {
        // Far more than the socket buffers of both hops hold: the gateway stops reading the client meanwhile.
        const file = generateFile(48 * MiB);
        const result = await uploadAvatar(`${front.url}${ADD}`, file, 'patient', TUTOR);
        expect(result.status, result.body).to.equal(200);
        expect(upstreamRead).to.be.above(file.sizeBytes);
      } finally {
        await pausing.close();
      }
    });
  });

  describe('limits and malformed forms', () => {
    let small: TestGateway;
    before(async () => {
      small = await gatewayWith({ MAX_UPLOAD_BYTES: String(MiB), MAX_FORM_BYTES: '1024' });
    });

    it('a declared body larger than MAX_UPLOAD_BYTES answers 413 before it is read, nothing forwarded', async () => {
      const req = http.request(`${small.url}${ADD}`, {
        method: 'POST',
        agent: false,
        headers: { ...TUTOR, 'content-type': `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, 'content-length': String(MiB + 1) },
      });
      req.on('error', () => undefined);
      req.write(`${partHead({ name: 'name', value: 'x' }, CLIENT_BOUNDARY)}x\r\n`);
      const res = await new Promise<Answer>((resolve) => req.once('response', (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).once('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
      }));
      req.destroy();
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      expect(res.headers.connection).to.equal('close');
      await nothingForwarded();
    });

    it('a streamed (chunked) body that grows past MAX_UPLOAD_BYTES answers 413 and aborts the upstream call', async () => {
      const abortedBefore = sim.aborted();
      const { headers } = multipart([]);
      const res = await post(small.url, {
        headers,
        body: (function* () {
          yield Buffer.from(`${partHead({ name: 'name', value: 'big' }, CLIENT_BOUNDARY)}big\r\n${partHead(video(), CLIENT_BOUNDARY)}`);
          for (let i = 0; i < 64; i++) yield randomBytes(64 * 1024);
        })(),
      });
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      await upstreamAborted(abortedBefore);
    });

    it('a field larger than MAX_FORM_BYTES answers 413, multipart or urlencoded, nothing forwarded', async () => {
      let res = await post(small.url, multipart([{ name: 'name', value: 'ok' }, { name: 'description', value: 'd'.repeat(2000) }]));
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      res = await post(small.url, urlencoded(`name=ok&description=${'d'.repeat(2000)}`));
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      // A text part sent as application/octet-stream without a filename is a field too, bounded alike.
      res = await post(small.url, multipart([{ name: 'description', value: 'd'.repeat(2000), contentType: 'application/octet-stream' }]));
      expect(res.status).to.equal(413);
      await nothingForwarded();
    });

    it('more fields or files than a form has answers 413, multipart or urlencoded, nothing forwarded', async () => {
      const many = Array.from({ length: 1001 }, (_, i) => ({ name: `f${i}`, value: '' }));
      let res = await post(gw.url, multipart(many));
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      res = await post(gw.url, urlencoded(many.map((f) => `${f.name}=`).join('&')));
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      res = await post(gw.url, multipart(many.map((f) => ({ name: f.name, filename: 'f.bin', contentType: 'application/octet-stream', data: Buffer.alloc(0) }))));
      expect(res.status).to.equal(413);
      expect(res.body).to.equal(TOO_LARGE);
      await nothingForwarded();
    });

    for (const [what, contentType, body] of [
      ['multipart without a boundary', 'multipart/form-data', `--${CLIENT_BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--${CLIENT_BOUNDARY}--\r\n`],
      ['a multipart body that is not one', `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, 'name=x&this=is+not+multipart'],
      ['a multipart body cut before its end', `multipart/form-data; boundary=${CLIENT_BOUNDARY}`, `--${CLIENT_BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx`],
      ['a wrong form type (multipart/mixed)', `multipart/mixed; boundary=${CLIENT_BOUNDARY}`, `--${CLIENT_BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--${CLIENT_BOUNDARY}--\r\n`],
    ] as const) {
      it(`${what} answers 400 Malformed form data, nothing forwarded`, async () => {
        const res = await post(gw.url, { headers: { ...TUTOR, 'content-type': contentType }, body });
        expect(res.status).to.equal(400);
        expect(res.body).to.equal(MALFORMED);
        await nothingForwarded();
      });
    }

    // "café" in latin1: 0xE9 on its own is no UTF-8.
    const notUtf8 = Buffer.from('caf\u00e9', 'latin1');
    const notUtf8Forms: Array<[string, Post]> = [
      ['a multipart value', multipart([{ name: 'description', value: notUtf8 }, { name: 'name', value: 'bytes' }, video()])],
      ['a multipart field name', {
        headers: multipart([]).headers,
        body: Buffer.concat([Buffer.from(`${partHead({ name: 'caf\u00e9', value: '' }, CLIENT_BOUNDARY)}\r\n`, 'latin1'), multipart([{ name: 'name', value: 'bytes' }, video()]).body]),
      }],
      ['a text part sent as application/octet-stream', multipart([{ name: 'description', value: notUtf8, contentType: 'application/octet-stream' }, video()])],
      ['an urlencoded value', urlencoded('name=bytes&description=caf%E9')],
      ['an urlencoded name', urlencoded('name=bytes&caf%E9=x')],
      ['an urlencoded body, unescaped', { headers: urlencoded('').headers, body: Buffer.concat([Buffer.from('name=bytes&description='), notUtf8]) }],
    ];
    for (const [what, form] of notUtf8Forms) {
      it(`bytes that are not UTF-8 in ${what} answer 400 Malformed form data, nothing forwarded`, async () => {
        const res = await post(gw.url, form);
        expect(res.status).to.equal(400);
        expect(res.body).to.equal(MALFORMED);
        await nothingForwarded();
      });
    }

    it('a multipart body cut in the middle of the file answers 400 and aborts the upload under way', async () => {
      const abortedBefore = sim.aborted();
      const { headers, body } = multipart([{ name: 'name', value: 'cut' }, video(2 * MiB)]);
      const res = await post(gw.url, { headers, body: body.subarray(0, MiB) });
      expect(res.status).to.equal(400);
      expect(res.body).to.equal(MALFORMED);
      await upstreamAborted(abortedBefore);
    });
  });
});
