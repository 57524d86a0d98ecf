// Auth in the real gateway (startTestGateway, the avatar routes mounted): preflights need no token,
// refusals carry CORS headers, the manager routes check the role, no token or secret reaches the
// logs; `npm run token`'s script prints a token the gateway accepts; and a DATABASE_URL that
// cannot be read stops the real program with one clear line.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ConfigError } from '../config.js';
import { issueToken } from '../scripts/token.js';
import { bearer, send } from './auth.helpers.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../', import.meta.url));
const FRONTEND = 'http://localhost:3000';

/** Runs a TypeScript entry point of the project as npm would (tsx), with exactly this environment. */
function runScript(script: string, args: string[], env: Record<string, string>) {
  return run(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', LOG_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-logs-')), ...env },
    timeout: 15_000,
  });
}

describe('auth in the real gateway', () => {
  let gw: TestGateway;
  before(async () => { gw = await startTestGateway({ UPSTREAM_TIMEOUT_MS: '300' }); });
  after(() => gw.close());

  it('answers a CORS preflight without a token', async () => {
    const res = await send(`${gw.url}/api/avatar/list`, {
      method: 'OPTIONS',
      headers: { Origin: FRONTEND, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization,x-request-time' },
    });
    expect(res.status).to.equal(200);
    expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
    expect(res.headers['access-control-allow-headers']).to.equal('authorization,x-request-time');
  });

  it('refuses a missing token with 401, Flask bytes and CORS headers', async () => {
    const res = await send(`${gw.url}/api/avatar/list`, { headers: { Origin: FRONTEND } });
    expect(`${res.status} ${res.body}`).to.equal('401 {"msg":"Missing Authorization Header"}\n');
    expect(res.headers['access-control-allow-origin']).to.equal(FRONTEND);
  });

  it('refuses a student on a manager route (the role claim, no DATABASE_URL) before anything is forwarded', async () => {
    const student = issueToken(gw.config, { sub: 'student@example.com', role: 'student' });
    const res = await send(`${gw.url}/api/avatar/delete`, { method: 'POST', ...bearer(student) });
    expect(`${res.status} ${res.body}`).to.equal('403 {"msg":"Permission denied"}\n');
  });

  it('lets a good token through to the route, and logs neither the token nor the secret', async () => {
    const token = issueToken(gw.config, { sub: 'tutor@example.com', role: 'tutor' });
    const res = await send(`${gw.url}/api/avatar/list?timeout=30000`, bearer(token));
    // Past the token check: the route ran (and met the unreachable avatar service).
    expect(res.status).to.not.be.oneOf([401, 403, 422]);
    await send(`${gw.url}/api/avatar/list`, bearer(`${token.slice(0, -2)}xx`));
    const logs = gw.logs();
    expect(logs).to.include('/api/avatar/list');
    expect(logs).to.not.include(token.split('.')[2]);
    expect(logs).to.not.include(token.split('.')[1]);
    expect(logs).to.not.include(TEST_SECRET);
  });

  it('npm run token prints a Flask-shaped token the gateway accepts', async () => {
    const { stdout } = await runScript('scripts/token.ts', ['--sub', 'tutor@example.com', '--role', 'tutor', '--expires', '60'], { JWT_SECRET_KEY: TEST_SECRET });
    const token = stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    expect(claims).to.include({ sub: 'tutor@example.com', role: 'tutor', type: 'access', fresh: false, exp: claims.iat + 60 });
    const res = await send(`${gw.url}/api/avatar/delete`, { method: 'POST', ...bearer(token) });
    expect(res.status).to.not.be.oneOf([401, 403, 422]);
  });
});

describe('auth: a DATABASE_URL that cannot be read stops the gateway', () => {
  const missing = 'sqlite:////nonexistent/instance/app.db';

  it('startGateway rejects with a ConfigError', async () => {
    let error: unknown;
    await startTestGateway({ DATABASE_URL: missing }).catch((e) => { error = e; });
    expect(error).to.be.instanceOf(ConfigError);
  });

  it('the program prints one line and exits 1', async () => {
    const failure = await runScript('server.ts', [], { JWT_SECRET_KEY: TEST_SECRET, DATABASE_URL: missing, PORT: '0', HOST: '127.0.0.1', WORKERS: '1' })
      .then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(failure?.code).to.equal(1);
    expect(failure?.stderr).to.match(/^avatar-gateway: configuration error: DATABASE_URL: cannot read the Flask user table \(email, role\) in \/nonexistent\/instance\/app\.db: [^\n]+\n$/);
  });
});
