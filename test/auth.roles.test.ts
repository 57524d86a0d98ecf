// Roles (auth.md, "Roles"): read per request from the Flask app's SQLite `user` table when
// DATABASE_URL names it (the table wins over the token's claim: demotions and deletions apply at
// once), from the token's `role` claim otherwise; case-insensitive either way. A database that
// cannot be read stops start-up; one that fails later answers 500 and the app keeps serving.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../config.js';
import { createAuth } from '../middleware/auth.js';
import { issueToken } from '../scripts/token.js';
import { createLogger } from '../services/logger.js';
import { bearer, createUserDb, send, startAuthApp, type AuthApp } from './auth.helpers.js';
import { testEnv } from './helpers/gateway.js';

const DENIED = '{"msg":"Permission denied"}\n';
const OK = '{"msg":"ok"}\n';

async function managers(app: AuthApp, sub: string, role: string): Promise<string> {
  const res = await send(`${app.url}/managers`, bearer(issueToken(app.config, { sub, role })));
  return `${res.status} ${res.body}`;
}

describe('auth: roles from the Flask user table (DATABASE_URL)', () => {
  let app: AuthApp;
  let db: Database.Database;
  before(async () => {
    const users = createUserDb([['tutor@example.com', 'Tutor'], ['student@example.com', 'student'], ['admin@example.com', 'ADMIN']]);
    db = users.db;
    app = await startAuthApp({ DATABASE_URL: users.url, AVATAR_MANAGER_ROLES: 'tutor,Admin' });
  });
  after(async () => {
    await app.close();
    db.close();
  });

  it('a tutor in the table passes, whatever the case of the stored role', async () => {
    expect(await managers(app, 'tutor@example.com', 'tutor')).to.equal(`200 ${OK}`);
    expect(await managers(app, 'admin@example.com', 'admin')).to.equal(`200 ${OK}`);
  });

  it("the table wins over the token's role claim", async () => {
    expect(await managers(app, 'student@example.com', 'tutor')).to.equal(`403 ${DENIED}`);
  });

  it('a user missing from the table has no role', async () => {
    expect(await managers(app, 'nobody@example.com', 'tutor')).to.equal(`403 ${DENIED}`);
  });

  it('a tutor demoted in the table loses the role on the next request, with the same token', async () => {
    db.prepare("INSERT INTO user (username, email, role) VALUES ('t2', 't2@example.com', 'tutor')").run();
    const token = issueToken(app.config, { sub: 't2@example.com', role: 'tutor' });
    expect((await send(`${app.url}/managers`, bearer(token))).status).to.equal(200);
    db.prepare("UPDATE user SET role = 'student' WHERE email = 't2@example.com'").run();
    expect((await send(`${app.url}/managers`, bearer(token))).body).to.equal(DENIED);
  });

  it('a deleted tutor has no role any more', async () => {
    db.prepare("INSERT INTO user (username, email, role) VALUES ('t3', 't3@example.com', 'tutor')").run();
    const token = issueToken(app.config, { sub: 't3@example.com', role: 'tutor' });
    expect((await send(`${app.url}/managers`, bearer(token))).status).to.equal(200);
    db.prepare("DELETE FROM user WHERE email = 't3@example.com'").run();
    expect((await send(`${app.url}/managers`, bearer(token))).body).to.equal(DENIED);
  });

  it('emails are matched exactly, as SQLAlchemy filter_by does on SQLite', async () => {
    expect(await managers(app, 'TUTOR@example.com', 'tutor')).to.equal(`403 ${DENIED}`);
  });

  it('a table that fails later answers 500, is logged, and the app keeps serving', async () => {
    const token = issueToken(app.config, { sub: 'tutor@example.com', role: 'tutor' });
    db.exec('ALTER TABLE user RENAME TO user_moved');
    try {
      const res = await send(`${app.url}/managers`, bearer(token));
      expect(`${res.status} ${res.body}`).to.equal('500 {"msg":"Internal Server Error"}\n');
      expect(app.logs()).to.include('reading the role from DATABASE_URL failed: no such table: user');
      expect((await send(`${app.url}/whoami`, bearer(token))).status).to.equal(200);
    } finally {
      db.exec('ALTER TABLE user_moved RENAME TO user');
    }
    expect((await send(`${app.url}/managers`, bearer(token))).status).to.equal(200);
  });

  it('a database locked by a writer fails the lookup quickly (500), not after seconds', async () => {
    const token = issueToken(app.config, { sub: 'tutor@example.com', role: 'tutor' });
    db.exec('BEGIN EXCLUSIVE');
    try {
      const started = performance.now();
      const res = await send(`${app.url}/managers`, bearer(token));
      expect(res.status).to.equal(500);
      expect(performance.now() - started).to.be.below(2000);
    } finally {
      db.exec('COMMIT');
    }
    expect((await send(`${app.url}/managers`, bearer(token))).status).to.equal(200);
  });
});

describe("auth: roles from the token's role claim (no DATABASE_URL)", () => {
  let app: AuthApp;
  before(async () => { app = await startAuthApp(); });
  after(() => app.close());

  for (const [role, answer] of [['tutor', `200 ${OK}`], ['TUTOR', `200 ${OK}`], ['student', `403 ${DENIED}`], ['', `403 ${DENIED}`]]) {
    it(`role claim ${JSON.stringify(role)} -> ${answer.slice(0, 3)}`, async () => {
      expect(await managers(app, 'someone@example.com', role)).to.equal(answer);
    });
  }
});

describe('auth: a DATABASE_URL whose user table cannot be read stops start-up', () => {
  const logger = createLogger(loadConfig(testEnv()));
  const startWith = (url: string) => () => createAuth(loadConfig(testEnv({ DATABASE_URL: url })), logger);

  it('a file that does not exist', () => {
    expect(startWith('sqlite:////nonexistent/instance/app.db')).to.throw(ConfigError, /^DATABASE_URL: cannot read the Flask user table \(email, role\) in \/nonexistent\/instance\/app\.db: /);
  });

  it('a database without the user table', () => {
    // An empty file is an empty SQLite database.
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flask-instance-')), 'app.db');
    fs.writeFileSync(file, '');
    expect(startWith(`sqlite:///${file}`)).to.throw(ConfigError, /no such table: user/);
  });
});
