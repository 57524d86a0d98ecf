// The caller's role, as the Flask original decides it (auth.md, "Roles"): looked up by email in the
// Flask app's own `user` table when DATABASE_URL names it, so a demoted tutor loses access at once
// and a deleted user has none; otherwise the token's `role` claim. Roles come back lower-cased.
import Database from 'better-sqlite3';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';

export interface RoleSource {
  /** The lower-cased role of the verified token's identity, undefined for none. */
  roleOf(claims: Record<string, unknown>): string | undefined;
  close(): void;
}

// Lookups run on the event loop: a writer holding the database must not stall every request for
// better-sqlite3's default 5 s, so a busy database fails the lookup quickly instead.
const BUSY_TIMEOUT_MS = 200;
// Flask-SQLAlchemy's `User.query.filter_by(email=...).first()`, read-only.
const ROLE_BY_EMAIL = 'SELECT role FROM "user" WHERE email = ? LIMIT 1';

function lowerCased(role: unknown): string | undefined {
  return typeof role === 'string' ? role.toLowerCase() : undefined;
}

/** The file of a SQLAlchemy URL: sqlite:///relative/app.db or sqlite:////absolute/app.db. */
export function sqliteFile(databaseUrl: string): string {
  return databaseUrl.slice('sqlite:///'.length).split('?')[0];
}

function openUserTable(databaseUrl: string): { db: Database.Database; roleByEmail: Database.Statement<[string], unknown> } {
  const file = sqliteFile(databaseUrl);
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    return { db, roleByEmail: db.prepare<[string], unknown>(ROLE_BY_EMAIL).pluck() };
  } catch (error) {
    db?.close();
    throw new ConfigError('DATABASE_URL', `cannot read the Flask user table (email, role) in ${file}: ${(error as Error).message}`);
  }
}

/** Opens the user table now, so a database that cannot be read stops start-up (ConfigError). */
export function createRoleSource(config: Pick<Config, 'databaseUrl' | 'jwt'>): RoleSource {
  if (config.databaseUrl === undefined) {
    return { roleOf: (claims) => lowerCased(claims.role), close() {} };
  }
  const { db, roleByEmail } = openUserTable(config.databaseUrl);
  const identityClaim = config.jwt.identityClaim;
  return {
    roleOf(claims) {
      const email = claims[identityClaim];
      if (typeof email !== 'string') return undefined;
      try {
        return lowerCased(roleByEmail.get(email));
      } catch (error) {
        throw new Error(`reading the role from DATABASE_URL failed: ${(error as Error).message}`, { cause: error });
      }
    },
    close: () => db.close(),
  };
}
