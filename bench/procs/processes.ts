// The processes a benchmark runs against, each in its own child process so that its memory and
// CPU are its own: the gateway under test (the real server.ts program, configured by env like a
// deployment) and the helpers forked from bench/ (the simulated avatar service, the bare proxy).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX_LOADER = import.meta.resolve('tsx');
const SOURCE_DIRS = ['.', 'routes', 'services', 'middleware'];
// Variables that only wire the gateway to the bench: left out of the command shown in the report.
const PLUMBING = ['HOST', 'PORT', 'LOG_DIR', 'SHUTDOWN_TIMEOUT_MS', 'JWT_SECRET_KEY', 'AVATAR_SERVICE_URL', 'TTS_SERVICE_URL', 'WEBRTC_SERVICE_URL'];

const running = new Set<ChildProcess>();

/** Kills every child still running (Ctrl-C, or a phase that failed half-way). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

function track(child: ChildProcess, label: string): { stderrTail(): string } {
  running.add(child);
  child.once('exit', () => running.delete(child));
  let tail = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
  });
  child.once('error', (error) => {
    tail += `\n${label}: ${error.message}`;
  });
  return { stderrTail: () => tail.trim() };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function newestSourceMtime(): number {
  let newest = 0;
  for (const dir of SOURCE_DIRS) {
    const full = path.join(ROOT, dir);
    if (!fs.existsSync(full)) continue;
    for (const name of fs.readdirSync(full)) {
      if (name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(path.join(full, name)).mtimeMs);
    }
  }
  return newest;
}

/** The built server when it is up to date with the sources (what production runs), else the sources via tsx. */
export function gatewayCommand(): { argv: string[]; label: string } {
  const built = path.join(ROOT, 'dist', 'server.js');
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newestSourceMtime()) {
    return { argv: [built], label: 'node dist/server.js' };
  }
  return { argv: ['--import', TSX_LOADER, path.join(ROOT, 'server.ts')], label: 'node --import tsx server.ts' };
}

export interface GatewayProcess {
  url: string;
  pid: number;
  /** The command line and the variables set, for the report. */
  command: string;
  stop(): Promise<void>;
}

async function waitUntilAnswering(url: string, child: ChildProcess, stderrTail: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with code ${child.exitCode}:\n${stderrTail()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the gateway did not answer ${url} within ${timeoutMs} ms:\n${stderrTail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts server.ts in a child process with `env` on top of a bench baseline. It runs in a scratch
 * directory, so the checkout's .env cannot change what is measured, and its console log goes to
 * /dev/null (it is still formatted and written: that cost is part of what is measured).
 */
export async function startGatewayProcess(env: Record<string, string>, profileDir?: string): Promise<GatewayProcess> {
  const port = await freePort();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-gateway-'));
  const settings: Record<string, string> = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_DIR: path.join(scratch, 'logs'),
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  };
  const { argv, label } = gatewayCommand();
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(profileDir)] : [];
  const child = spawn(process.execPath, [...profile, ...argv], {
    cwd: scratch,
    env: { PATH: process.env.PATH, ...settings },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const { stderrTail } = track(child, 'gateway');
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(`${url}/api/ping`, child, stderrTail, 30_000);
  } catch (error) {
    await stopChild(child, 1000);
    throw error;
  }
  const shown = Object.entries(settings)
    .filter(([name]) => !PLUMBING.includes(name))
    .map(([name, value]) => `${name}=${value}`);
  return {
    url,
    pid: child.pid!,
    command: `${shown.join(' ')} ${label}`,
    async stop() {
      await stopChild(child, 5000);
      fs.rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** A bench helper in a child process, spoken to over IPC: one request, one reply, by id. */
export interface Helper {
  url: string;
  pid: number;
  ask<T>(message: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

export async function forkHelper(entry: string, args: string[]): Promise<Helper> {
  const child = fork(fileURLToPath(new URL(entry, import.meta.url)), args, {
    execArgv: ['--import', TSX_LOADER],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const { stderrTail } = track(child, entry);
  let nextId = 0;
  const pending = new Map<number, (value: unknown) => void>();
  const ready = new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${entry} exited with code ${code}:\n${stderrTail()}`)));
    child.on('message', (message: { id?: number; url?: string; result?: unknown }) => {
      if (message.url) resolve(message.url);
      else if (message.id !== undefined) {
        pending.get(message.id)?.(message.result);
        pending.delete(message.id);
      }
    });
  });
  const url = await ready;
  return {
    url,
    pid: child.pid!,
    ask<T>(message: Record<string, unknown>) {
      const id = nextId++;
      return new Promise<T>((resolve) => {
        pending.set(id, resolve as (value: unknown) => void);
        child.send({ ...message, id });
      });
    },
    stop: () => stopChild(child, 2000),
  };
}
