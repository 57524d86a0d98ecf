// What the auth tests share: a small real app that mounts the auth middleware the way the routes do
// (with the project's CORS, request context and error handler), a signer that can write any header
// and payload (alg none, odd claims), a Flask-style SQLite user table and a local JWKS endpoint.
import { createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import express from 'express';
import winston from 'winston';
import { loadConfig, type Config } from '../config.js';
import { createAuth, type Auth } from '../middleware/auth.js';
import { accessLog } from '../middleware/accessLog.js';
import { flaskCors } from '../middleware/cors.js';
import { errorHandler, notFound } from '../middleware/errorHandler.js';
import { requestContext } from '../middleware/requestContext.js';
import { issueToken, type TokenRequest } from '../scripts/token.js';
import { sendJson } from '../services/flaskJson.js';
import { createLogger } from '../services/logger.js';
import { testEnv } from './helpers/gateway.js';

export { send } from './helpers/http.js';

export interface AuthApp {
  url: string;
  config: Config;
  auth: Auth;
  /** Every line logged so far. */
  logs(): string;
  close(): Promise<void>;
}

/**
 * A real app on 127.0.0.1: GET /whoami needs a token (answers the identity), GET /managers also
 * needs one of AVATAR_MANAGER_ROLES. Built from an env object exactly like the gateway.
 */
export async function startAuthApp(env: Record<string, string | undefined> = {}): Promise<AuthApp> {
  const config = loadConfig(testEnv(env));
  const lines: string[] = [];
  const sink = new winston.transports.Stream({
    stream: new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  const logger = createLogger(config, sink);
  const auth = createAuth(config, logger);
  const app = express();
  app.set('etag', false);
  app.use(requestContext(logger));
  app.use(accessLog());
  app.use(flaskCors(config.corsOrigins));
  app.get('/whoami', auth.jwtRequired, (req, res) => sendJson(res, 200, { identity: req.auth?.[config.jwt.identityClaim] }));
  app.get('/managers', auth.jwtRequired, auth.requireRole(...config.avatarManagerRoles), (_req, res) => sendJson(res, 200, { msg: 'ok' }));
  app.use(notFound);
  app.use(errorHandler());
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    config,
    auth,
    logs: () => lines.join(''),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      auth.close();
    },
  };
}

/** `Authorization: Bearer <token>`, plus whatever else a test adds. */
export function bearer(token: string, headers: Record<string, string> = {}): { headers: Record<string, string> } {
  return { headers: { Authorization: `Bearer ${token}`, ...headers } };
}

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A compact JWT with exactly this header and payload, signed as `header.alg` says (none: no
 * signature), or as `signAs` says for a header without a usable alg.
 */
export function signToken(header: Record<string, unknown>, payload: Record<string, unknown>, key: string | Buffer | KeyObject = '', signAs = String(header.alg)): string {
  const input = `${segment(header)}.${segment(payload)}`;
  const alg = signAs;
  let signature: Buffer;
  if (alg === 'none') signature = Buffer.alloc(0);
  else if (alg.startsWith('HS')) signature = createHmac(`sha${alg.slice(2)}`, key as string | Buffer).update(input).digest();
  else signature = cryptoSign(`sha${alg.slice(2)}`, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** The claims of a token the Flask backend would issue now (issueToken's), to vary one at a time. */
export function flaskClaims(config: Config, request: Partial<TokenRequest> = {}): Record<string, unknown> {
  const token = issueToken(config, { sub: 'student@example.com', role: 'student', ...request });
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

export const FLASK_HEADER = { alg: 'HS256', typ: 'JWT' };

/** A SQLite file with the Flask app's `user` table (Flask-SQLAlchemy's DDL) and a writable handle. */
export function createUserDb(users: Array<[email: string, role: string]>): { url: string; db: Database.Database; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flask-instance-'));
  const db = new Database(path.join(dir, 'app.db'));
  db.exec(`CREATE TABLE user (
    id INTEGER NOT NULL,
    username VARCHAR(80) NOT NULL,
    email VARCHAR(120) NOT NULL,
    password_hash VARCHAR(256),
    role VARCHAR(20) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (username),
    UNIQUE (email)
  )`);
  const insert = db.prepare('INSERT INTO user (username, email, password_hash, role) VALUES (?, ?, ?, ?)');
  for (const [email, role] of users) insert.run(email.split('@')[0], email, 'pbkdf2:sha256:600000$x$y', role);
  return { url: `sqlite:///${path.join(dir, 'app.db')}`, db, dir };
}

export interface JwksServer {
  url: string;
  /** How many times the key set was fetched. */
  fetches(): number;
  /** Serve another key set from now on (a rotation). */
  serve(keys: object[]): void;
  close(): Promise<void>;
}

/** A JWKS endpoint on 127.0.0.1 serving `{"keys": [...]}` at /.well-known/jwks.json. */
export async function startJwksServer(keys: object[]): Promise<JwksServer> {
  let current = keys;
  let fetches = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    fetches: () => fetches,
    serve(next) {
      current = next;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
