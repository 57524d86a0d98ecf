// WORKERS=2 for real: the program (server.ts through tsx) as a primary with two worker processes,
// watched through its log lines, each of which names the worker's pid.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { TEST_SECRET, testEnv } from './helpers/gateway.js';
import { send } from './helpers/http.js';
import { sample } from './helpers/prometheus.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** The program's output so far, and a way to wait until it shows something. */
class Output {
  text = '';
  private readonly waiters = new Set<() => void>();

  constructor(child: ChildProcess) {
    const take = (chunk: Buffer) => {
      this.text += chunk.toString('utf8');
      for (const waiter of this.waiters) waiter();
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
  }

  /** Resolves with the first non-undefined answer of `check` over the output since `from`. */
  until<T>(check: (text: string) => T | undefined, from = 0): Promise<T> {
    return new Promise((resolve) => {
      const waiter = () => {
        const found = check(this.text.slice(from));
        if (found === undefined) return;
        this.waiters.delete(waiter);
        resolve(found);
      };
      this.waiters.add(waiter);
      waiter();
    });
  }
}

function all(text: string, pattern: RegExp): RegExpMatchArray[] {
  return [...text.matchAll(new RegExp(pattern, 'g'))];
}

const LISTENING = /avatar-gateway listening on http:\/\/127\.0\.0\.1:(\d+) pid=(\d+)/;
const PING_SERVED = /request requestId=\S+ pid=(\d+) method=GET path=\/api\/ping status=200/;

function pidsServingPings(text: string): number[] {
  return all(text, PING_SERVED).map((match) => Number(match[1]));
}

describe('WORKERS=2: a primary and two worker processes (real processes on 127.0.0.1)', function () {
  this.timeout(20_000);
  let upstream: TestUpstream;
  let holding = false;
  const held: http.ServerResponse[] = [];
  let onHeld = () => {};
  let primary: ChildProcess;
  let output: Output;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let url: string;
  let port: number;
  let workerPids: number[];

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      if (holding) {
        held.push(res);
        onHeld();
      } else {
        res.end('{}');
      }
    });
    primary = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
      cwd: root,
      env: testEnv({
        WORKERS: '2',
        LOG_LEVEL: 'info',
        JWT_SECRET_KEY: TEST_SECRET,
        METRICS_TOKEN: '',
        AVATAR_SERVICE_URL: upstream.url,
        TTS_SERVICE_URL: upstream.url,
        WEBRTC_SERVICE_URL: upstream.url,
        SHUTDOWN_TIMEOUT_MS: '10000',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => primary.once('exit', (code, signal) => resolve({ code, signal })));
    output = new Output(primary);
    const listening = await Promise.race([
      output.until((text) => {
        const lines = all(text, LISTENING);
        return lines.length === 2 ? lines : undefined;
      }),
      exited.then(() => { throw new Error(`the gateway exited at start-up:\n${output.text}`); }),
    ]);
    port = Number(listening[0][1]);
    url = `http://127.0.0.1:${port}`;
    workerPids = listening.map((match) => Number(match[2]));
  });

  after(async () => {
    if (primary.exitCode === null && primary.signalCode === null) {
      primary.kill('SIGKILL');
      for (const pid of workerPids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    await upstream.close();
  });

  it('spreads connections over both workers, and /metrics sums them', async () => {
    expect(new Set(workerPids).size).to.equal(2);
    expect(workerPids).not.to.include(primary.pid);
    for (let i = 0; i < 20; i++) expect((await send(`${url}/api/ping`)).body).to.equal('pong');

    const servedBy = await output.until((text) => {
      const pids = pidsServingPings(text);
      return pids.length === 20 ? pids : undefined;
    });
    expect(new Set(servedBy)).to.deep.equal(new Set(workerPids));

    // Whichever worker answers the scrape, the count covers both.
    const metrics = await send(`${url}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(sample(metrics.body, 'http_requests_total', { method: 'GET', route: '/api/ping', status: '200' })).to.equal(20);
  });

  it('replaces a killed worker, after a logged back-off', async () => {
    const [victim, survivor] = workerPids;
    const from = output.text.length;
    process.kill(victim, 'SIGKILL');
    await output.until((text) => (new RegExp(`worker ${victim} was killed by SIGKILL; starting a replacement in 100 ms`).test(text) || undefined), from);
    const replacement = await output.until((text) => {
      const match = LISTENING.exec(text);
      return match ? Number(match[2]) : undefined;
    }, from);
    expect([victim, survivor]).not.to.include(replacement);
    workerPids = [survivor, replacement];

    const servedFrom = output.text.length;
    for (let i = 0; i < 6; i++) expect((await send(`${url}/api/ping`)).status).to.equal(200);
    const servedBy = await output.until((text) => {
      const pids = pidsServingPings(text);
      return pids.length === 6 ? pids : undefined;
    }, servedFrom);
    expect(new Set(servedBy)).to.deep.equal(new Set(workerPids));
    expect((await send(`${url}/metrics`)).status).to.equal(200);
  });

  it('on SIGTERM, finishes every request in flight in every worker, then exits 0', async () => {
    holding = true;
    // Each health check calls the three upstreams, all of them this test's server, which holds them.
    const requests = Array.from({ length: 10 }, () => send(`${url}/api/health/detailed`));
    await new Promise<void>((resolve) => {
      onHeld = () => held.length === 30 && resolve();
    });

    const from = output.text.length;
    primary.kill('SIGTERM');
    // Both workers have stopped accepting, with requests still running.
    const draining = await output.until((text) => {
      const lines = all(text, /shutting down: no new connections, finishing requests in flight pid=(\d+) reason=SIGTERM inFlight=(\d+)/);
      return lines.length === 2 ? lines : undefined;
    }, from);
    expect(new Set(draining.map((match) => Number(match[1])))).to.deep.equal(new Set(workerPids));
    expect(draining.reduce((sum, match) => sum + Number(match[2]), 0)).to.equal(10);

    for (const res of held) res.end('{}');
    const answers = await Promise.all(requests);
    for (const answer of answers) {
      expect(answer.status).to.equal(200);
      expect(JSON.parse(answer.body).status).to.equal('healthy');
      expect(answer.headers.connection).to.equal('close');
    }

    expect(await exited).to.deep.equal({ code: 0, signal: null });
    expect(output.text.slice(from)).to.match(/all workers have stopped exitCode=0/);
    const refused = await new Promise<string>((resolve) => {
      net.connect(port, '127.0.0.1').once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? '')).once('connect', () => resolve('connected'));
    });
    expect(refused).to.equal('ECONNREFUSED');
  });
});
