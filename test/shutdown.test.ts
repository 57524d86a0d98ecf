// server.ts's process life, in a real child process (`node --import tsx server.ts`): graceful
// shutdown on SIGTERM (also under load and at the deadline), a second signal, a bad configuration
// and a fatal error at start-up.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import winston from 'winston';
import { generateFile, type GeneratedFile } from '../bench/clients/upload.js';
import { loadConfig } from '../config.js';
import { startAvatarService } from '../sim/avatarService.js';
import { createLogger, flushLogger } from '../services/logger.js';
import { startTestGateway, TEST_SECRET, testEnv } from './helpers/gateway.js';
import { send, type RawResponse } from './helpers/http.js';
import { bearer } from './helpers/tokens.js';
import { json, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';

const SERVER = fileURLToPath(new URL('../server.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

interface GatewayProcess {
  port: number;
  logDir: string;
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout has matched; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<void>;
  exited: Promise<number | null>;
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function spawnGateway(env: Record<string, string>): Promise<GatewayProcess> {
  // A fresh working directory: no .env of the checkout is read.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-proc-'));
  const logDir = path.join(cwd, 'logs');
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const proc = spawn(process.execPath, ['--import', TSX, SERVER], {
    cwd,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      LOG_DIR: logDir,
      JWT_SECRET_KEY: TEST_SECRET,
      AVATAR_SERVICE_URL: 'http://127.0.0.1:9',
      TTS_SERVICE_URL: 'http://127.0.0.1:9',
      WEBRTC_SERVICE_URL: 'http://127.0.0.1:9',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (chunk) => { stdout += chunk; });
  proc.stderr!.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  children.push(proc);
  return {
    port,
    logDir,
    proc,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor: (pattern) => new Promise((resolve, reject) => {
      const check = () => {
        if (!pattern.test(stdout)) return;
        proc.stdout!.off('data', check);
        resolve();
      };
      proc.stdout!.on('data', check);
      void exited.then((code) => reject(new Error(`exited ${code} before ${pattern}:\n${stdout}${stderr}`)));
      check();
    }),
  };
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** An upstream that answers at once until armed, then holds every request until released. */
async function holdingUpstream() {
  const held: http.ServerResponse[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  let armed = false;
  const upstream = await startUpstream((_req, res) => {
    if (!armed) return void res.end('{}');
    held.push(res);
    for (const waiter of waiters) if (held.length >= waiter.count) waiter.resolve();
  });
  return {
    upstream,
    arm: () => { armed = true; },
    /** Resolves once this many requests are being held. */
    holding: (count: number) => new Promise<void>((resolve) => {
      waiters.push({ count, resolve });
      if (held.length >= count) resolve();
    }),
    release: () => { for (const res of held.splice(0)) res.end('{}'); },
  };
}

/** An upstream whose preview sends its headers and half the image at once, the rest when released. */
async function stallingPreviewUpstream(image: Buffer) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  const upstream = await startUpstream((req, res) => {
    if (req.url !== '/avatar/preview') return void res.end('{}');
    req.resume();
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': image.length });
    res.write(image.subarray(0, image.length / 2));
    void released.then(() => res.end(image.subarray(image.length / 2)));
  });
  return { upstream, release };
}

interface Download {
  /** Resolves once the first body bytes have arrived: the headers are out. */
  streaming: Promise<void>;
  done: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>;
}

/** A form POST on `agent` (a keep-alive one, as browsers use), its answer collected as it streams in. */
function download(url: string, agent: http.Agent, form: string, headers: Record<string, string>): Download {
  let firstBytes!: () => void;
  const streaming = new Promise<void>((resolve) => { firstBytes = resolve; });
  const done = new Promise<Awaited<Download['done']>>((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(form.length) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        firstBytes();
      });
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(form);
  });
  return { streaming, done };
}

/**
 * A video upload as the frontend sends it (bench/clients/upload.ts's form), whose body stops half-way
 * until `resume()`: it is still streaming whenever the test decides.
 */
function pausedUpload(url: string, file: GeneratedFile, name: string, headers: Record<string, string>) {
  let resume!: () => void;
  const resumed = new Promise<void>((resolve) => { resume = resolve; });
  const boundary = `----shutdown${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${name}\r\n`
      + `--${boundary}\r\nContent-Disposition: form-data; name="prompt_face"; filename="${name}.mp4"\r\n`
      + 'Content-Type: video/mp4\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const req = http.request(url, {
    method: 'POST',
    agent: false,
    headers: {
      ...headers,
      'Content-Type': `multipart/form-data; boundary=${boundary}`,
      'Content-Length': String(head.length + file.sizeBytes + tail.length),
    },
  });
  let sentBytes = 0;
  const body = async function* () {
    yield head;
    for (const chunk of file.chunks()) {
      if (sentBytes >= file.sizeBytes / 2) await resumed;
      sentBytes += chunk.length;
      yield chunk;
    }
    yield tail;
  };
  const answer = new Promise<RawResponse>((resolve, reject) => {
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: bytes.toString('utf8'), bytes, complete: res.complete });
      });
      res.once('error', reject);
    });
  });
  const sent = pipeline(Readable.from(body()), req);
  return {
    /** Bytes of the file sent so far. */
    sentBytes: () => sentBytes,
    resume,
    done: Promise.all([answer, sent]).then(([res]) => res),
  };
}

function connectionRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('graceful shutdown (real child process)', function () {
  this.timeout(20_000);
  let fast: TestUpstream;
  let slow: Awaited<ReturnType<typeof holdingUpstream>>;

  beforeEach(async () => {
    fast = await startUpstream(json({}));
    slow = await holdingUpstream();
  });
  afterEach(async () => {
    await fast.close();
    await slow.upstream.close();
  });

  /** A gateway whose health/detailed waits on the slow avatar upstream, with that request in flight. */
  async function gatewayWithRequestInFlight(env: Record<string, string> = {}) {
    const gateway = await spawnGateway({
      AVATAR_SERVICE_URL: slow.upstream.url,
      TTS_SERVICE_URL: fast.url,
      WEBRTC_SERVICE_URL: fast.url,
      HEALTH_PROBE_TIMEOUT_MS: '10000',
      ...env,
    });
    // The start-up lines come after the start-up probes: from here on, the avatar probe is ours.
    await gateway.waitFor(/upstream avatar answers at http:\/\/127\.0\.0\.1:\d+/);
    slow.arm();
    const inFlight = send(`http://127.0.0.1:${gateway.port}/api/health/detailed`);
    inFlight.catch(() => { /* asserted by the tests that expect it to succeed */ });
    await slow.holding(1);
    return { gateway, inFlight };
  }

  it('SIGTERM: the request in flight completes with 200, new connections are refused, exit 0', async () => {
    const { gateway, inFlight } = await gatewayWithRequestInFlight();
    gateway.proc.kill('SIGTERM');
    await gateway.waitFor(/shutting down/);
    expect(await connectionRefused(gateway.port)).to.equal('ECONNREFUSED');

    slow.release();
    const res: RawResponse = await inFlight;
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body).status).to.equal('healthy');
    expect(res.headers.connection).to.equal('close');
    expect(await gateway.exited).to.equal(0);
    expect(gateway.stdout()).to.match(/shutdown complete/);
    expect(gateway.stderr()).to.equal('');
  });

  it('at SHUTDOWN_TIMEOUT_MS a request still running gets 503 "Service shutting down", is logged, and the process exits 0', async () => {
    const { gateway, inFlight } = await gatewayWithRequestInFlight({ SHUTDOWN_TIMEOUT_MS: '300' });
    gateway.proc.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).to.equal(503);
    expect(res.headers.connection).to.equal('close');
    expect(res.headers['retry-after']).to.equal('1');
    expect(res.bytes.toString('latin1')).to.equal('{"msg":"Service shutting down, please retry"}\n');
    expect(res.complete).to.equal(true);
    expect(await gateway.exited).to.equal(0);
    expect(gateway.stderr()).to.equal('');
    expect(gateway.stdout()).to.match(/request still running at the shutdown deadline method=GET path=\/api\/health\/detailed/);
    // The access line is written as the connection closes, after the cut: it still reaches the log.
    expect(gateway.stdout()).to.match(/request requestId=\S+ method=GET path=\/api\/health\/detailed status=503 .*\n[^]*shutdown complete/);
  });

  it('a response already streaming at SIGTERM completes whole, its keep-alive connection closes, and the process exits before the deadline', async () => {
    const SHUTDOWN_TIMEOUT_MS = 10_000; // long: nothing may hold the drain until then
    const image = randomBytes(256 * 1024);
    const preview = await stallingPreviewUpstream(image);
    const agent = new http.Agent({ keepAlive: true });
    try {
      const gateway = await spawnGateway({
        AVATAR_SERVICE_URL: preview.upstream.url,
        TTS_SERVICE_URL: fast.url,
        WEBRTC_SERVICE_URL: fast.url,
        SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      });
      await gateway.waitFor(/listening/);
      const answer = download(`http://127.0.0.1:${gateway.port}/api/avatar/preview`, agent, 'avatar_name=bob_math', bearer('student'));
      await answer.streaming;
      const signalled = performance.now();
      gateway.proc.kill('SIGTERM');
      await gateway.waitFor(/shutting down/);

      preview.release();
      const res = await answer.done;
      expect(res.status).to.equal(200);
      expect(res.headers.connection).to.equal('keep-alive'); // sent before the signal
      expect(res.body.equals(image), 'the image, byte for byte').to.equal(true);
      expect(await gateway.exited).to.equal(0);
      expect(performance.now() - signalled).to.be.below(SHUTDOWN_TIMEOUT_MS);
      expect(gateway.stdout()).to.match(/shutdown complete/);
    } finally {
      agent.destroy();
      await preview.upstream.close();
    }
  });

  it('a request that arrives on a kept-alive connection during the drain is answered with Connection: close, and its connection closed', async () => {
    const { gateway, inFlight } = await gatewayWithRequestInFlight();
    const url = `http://127.0.0.1:${gateway.port}`;
    const socket = net.connect(gateway.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk; });
    const closedByGateway = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => received.endsWith('pong'), 'the first answer');
    // Half of the next request: once the gateway has read it (it has by the time it answers a
    // connection opened later), this connection is not idle, so the signal does not close it.
    socket.write('GET /api/ping HTTP/1.1\r\n');
    expect((await send(`${url}/api/ping`)).status).to.equal(200);
    gateway.proc.kill('SIGTERM');
    await gateway.waitFor(/shutting down/);

    socket.write('Host: 127.0.0.1\r\n\r\n');
    await closedByGateway;
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    expect(answers).to.have.length(2);
    expect(answers[0]).to.match(/\r\nConnection: keep-alive\r\n/);
    expect(answers[1]).to.match(/^HTTP\/1\.1 200 OK\r\n/).and.match(/\r\nConnection: close\r\n/).and.match(/\r\n\r\npong$/);

    slow.release();
    expect((await inFlight).status).to.equal(200);
    expect(await gateway.exited).to.equal(0);
  });

  it('SIGTERM under load: 200 slow requests and a 64 MiB upload in flight all complete, new connections are refused, exit 0 within SHUTDOWN_TIMEOUT_MS', async () => {
    const SHUTDOWN_TIMEOUT_MS = 5000;
    const REQUESTS = 200;
    const sim = await startAvatarService({ latencyMs: 500 });
    try {
      const gateway = await spawnGateway({
        AVATAR_SERVICE_URL: sim.url,
        TTS_SERVICE_URL: fast.url,
        WEBRTC_SERVICE_URL: fast.url,
        SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      });
      await gateway.waitFor(/upstream avatar answers/);
      const url = `http://127.0.0.1:${gateway.port}`;
      const listed = await send(`${url}/api/avatar/list`, { headers: bearer('student') });
      expect(listed.status).to.equal(200);
      expect(Object.keys(JSON.parse(listed.body))).to.have.members(['bob_math', 'Zoe', 'avatar_1']);

      const file = generateFile(64 * 1024 * 1024);
      const upload = pausedUpload(`${url}/api/avatar/add`, file, 'shutdown_upload', bearer('tutor'));
      const lists = Array.from({ length: REQUESTS }, () => send(`${url}/api/avatar/list`, { headers: bearer('student') }));
      await waitFor(() => sim.inFlight() === REQUESTS + 1 && upload.sentBytes() >= file.sizeBytes / 2, 'every request in flight at the service');
      const signalled = performance.now();
      gateway.proc.kill('SIGTERM');
      await gateway.waitFor(/shutting down/);
      expect(gateway.stdout()).to.match(new RegExp(`shutting down: .* inFlight=${REQUESTS + 1}\\b`));
      expect(await connectionRefused(gateway.port)).to.equal('ECONNREFUSED');

      upload.resume();
      for (const res of await Promise.all(lists)) {
        expect(res.status).to.equal(200);
        expect(res.body).to.equal(listed.body);
      }
      const uploaded = await upload.done;
      expect(uploaded.status, uploaded.body).to.equal(200);
      expect(uploaded.body).to.equal('{"status":"success","message":"Avatar created","image_path":"data/avatars/shutdown_upload/full_imgs/00000000.png"}');
      const add = sim.requests.find((request) => request.url === '/avatar/add');
      expect(add?.files).to.deep.equal([{ field: 'prompt_face', filename: 'shutdown_upload.mp4', contentType: 'video/mp4', size: file.sizeBytes, sha256: file.sha256 }]);

      expect(await gateway.exited).to.equal(0);
      expect(performance.now() - signalled).to.be.below(SHUTDOWN_TIMEOUT_MS);
      expect(gateway.stdout()).not.to.match(/shutdown deadline/);
      expect(gateway.stderr()).to.equal('');
    } finally {
      await sim.close();
    }
  });

  it('a second SIGTERM ends the process at once, without waiting for the request in flight', async () => {
    const { gateway, inFlight } = await gatewayWithRequestInFlight();
    gateway.proc.kill('SIGTERM');
    await gateway.waitFor(/shutting down/);
    const started = performance.now();
    gateway.proc.kill('SIGTERM');
    const code = await gateway.exited;
    expect(code).to.be.a('number').and.not.equal(0);
    expect(performance.now() - started).to.be.below(2000); // SHUTDOWN_TIMEOUT_MS is 5000
    expect(gateway.stdout()).to.match(/second SIGTERM: exiting at once/);
    expect(await inFlight.then(() => 'answered', () => 'cut')).to.equal('cut');
  });
});

describe('start-up failures (real child process)', function () {
  this.timeout(20_000);

  it('a bad configuration value exits 1 with one line naming the variable', async () => {
    const gateway = await spawnGateway({ UPSTREAM_TIMEOUT_MS: 'ten seconds' });
    expect(await gateway.exited).to.equal(1);
    expect(gateway.stderr()).to.equal('avatar-gateway: configuration error: UPSTREAM_TIMEOUT_MS: expected a whole number, got "ten seconds"\n');
    expect(gateway.stdout()).to.equal('');
  });

  it('an unusable LOG_DIR exits 1 with one line naming LOG_DIR, no stack', async () => {
    const gateway = await spawnGateway({ LOG_DIR: '/dev/null/logs' });
    expect(await gateway.exited).to.equal(1);
    expect(gateway.stderr()).to.equal('avatar-gateway: configuration error: LOG_DIR: cannot create the directory "/dev/null/logs" (ENOTDIR)\n');
    expect(gateway.stdout()).to.equal('');
  });

  it('a fatal error (the port is taken) is logged with its stack to LOG_DIR/error.log, then exit 1', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const gateway = await spawnGateway({ PORT: String((taken.address() as net.AddressInfo).port) });
      expect(await gateway.exited).to.equal(1);
      const lines = fs.readFileSync(path.join(gateway.logDir, 'error.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ level: 'error', message: 'fatal error, exiting' });
      expect(lines[0].stack).to.match(/EADDRINUSE[\s\S]*\n\s+at /);
    } finally {
      taken.close();
    }
  });
});

describe('shutdown deadline (in process)', () => {
  it('a request still running at SHUTDOWN_TIMEOUT_MS gets 503 "Service shutting down" with Retry-After', async () => {
    const slow = await holdingUpstream();
    slow.arm();
    const gw = await startTestGateway({ AVATAR_SERVICE_URL: slow.upstream.url, SHUTDOWN_TIMEOUT_MS: '200', HEALTH_PROBE_TIMEOUT_MS: '10000' });
    try {
      const inFlight = send(`${gw.url}/api/health/detailed`);
      await slow.holding(2); // the start-up probe's and ours
      const started = performance.now();
      await gw.close();
      const res = await inFlight;
      expect(performance.now() - started).to.be.within(150, 1500);
      expect(res.status).to.equal(503);
      expect(res.headers['retry-after']).to.equal('1');
      expect(res.headers.connection).to.equal('close');
      expect(res.body).to.equal('{"msg":"Service shutting down, please retry"}\n');
      expect(gw.logs()).to.match(/request still running at the shutdown deadline method=GET path=\/api\/health\/detailed requestId=/);
    } finally {
      await slow.upstream.close();
    }
  });
});

describe('the logger after shutdown flushed it', () => {
  it('drops a late line (a connection closing afterwards) instead of failing with "write after end"', async () => {
    const lines: string[] = [];
    const sink = new winston.transports.Stream({ stream: new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } }) });
    const logger = createLogger(loadConfig(testEnv()), sink);
    const errors: Error[] = [];
    logger.on('error', (error: Error) => errors.push(error));
    logger.info('before');
    await flushLogger(logger);
    logger.child({ requestId: 'late' }).info('request', { status: 503 }); // as the access log writes
    logger.error('fatal error, exiting', { error: new Error('late') });
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors.map((error) => error.message)).to.deep.equal([]);
    expect(lines.join('')).to.match(/before/).and.not.to.match(/request|late/);
    // A second flush (a fatal error while exiting) resolves as well.
    await flushLogger(logger);
  });
});
