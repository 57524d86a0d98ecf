// server.ts's process life, in a real child process (`node --import tsx server.ts`): graceful
// shutdown on SIGTERM, a second signal, a bad configuration and a fatal error at start-up.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type http from 'node:http';
import { expect } from 'chai';
import { startTestGateway, TEST_SECRET } from './helpers/gateway.js';
import { send, type RawResponse } from './helpers/http.js';
import { json, startUpstream, type TestUpstream } from './helpers/upstream.js';

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
  async function gatewayWithRequestInFlight() {
    const gateway = await spawnGateway({
      AVATAR_SERVICE_URL: slow.upstream.url,
      TTS_SERVICE_URL: fast.url,
      WEBRTC_SERVICE_URL: fast.url,
      HEALTH_PROBE_TIMEOUT_MS: '10000',
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
