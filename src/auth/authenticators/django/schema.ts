/**
 * The tables of a Django database that Django mode reads, and what its authenticators
 * share: the user row → {@link User} mapping, the active-user rule and failing closed.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { ServiceUnavailableError } from '../../../errors.js';
import type { User } from '../../user.js';
import { invalid } from '../jwt.js';

/**
 * Django's `auth_user` table (or a custom user model's table of the same shape), as far
 * as authentication reads it. Integer columns may come back as strings (PostgreSQL
 * `bigint`) and booleans as 0/1 (SQLite).
 */
export interface DjangoAuthUserTable {
  id: number | string;
  username: string;
  is_staff: boolean | number;
  is_active: boolean | number;
  /** The password hash; sessions are bound to it (the session auth hash). */
  password: string;
  email: string;
}

/** DRF's `authtoken_token` table: the plaintext key, its user, its creation time. */
export interface DjangoAuthTokenTable {
  key: string;
  user_id: number | string;
  created: Date | string;
}

/** Django's `django_session` table (the `db` and `cached_db` session backends). */
export interface DjangoSessionTable {
  session_key: string;
  /** Signed, compressed JSON (`django.core.signing`). */
  session_data: string;
  /** A `Date` on PostgreSQL; UTC text (`2024-01-01 12:00:00.123456`) on SQLite. */
  expire_date: Date | string;
}

/**
 * The tables of a Django database these authenticators read. Pass your own
 * `Kysely<YourDatabase>` as `Kysely<DjangoDatabase>` (it needs only these tables, and
 * only those of the credential kinds you use).
 */
export interface DjangoDatabase {
  auth_user: DjangoAuthUserTable;
  authtoken_token: DjangoAuthTokenTable;
  django_session: DjangoSessionTable;
}

/** A user row as the authenticators select it. */
export type DjangoUserRow = Pick<
  DjangoAuthUserTable,
  'id' | 'username' | 'is_staff' | 'is_active' | 'password'
>;

/** @internal */
export function assertDb(label: string, db: unknown): asserts db is Kysely<DjangoDatabase> {
  if (
    typeof db !== 'object' ||
    db === null ||
    typeof (db as { selectFrom?: unknown }).selectFrom !== 'function'
  ) {
    throw new TypeError(`${label}: "db" must be a Kysely instance`);
  }
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * @internal The user table as Kysely reads it: `auth_user`, or a custom user model's table
 * (`AUTH_USER_MODEL`) aliased to `auth_user`.
 */
export function userTable(label: string, table: unknown): 'auth_user' {
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new TypeError(`${label}: "userTable" must be a table name (letters, digits, _)`);
  }
  // Kysely reads "name as alias" in a table reference; the queries all say auth_user.
  return (table === 'auth_user' ? table : `${table} as auth_user`) as 'auth_user';
}

/**
 * @internal Runs a query. A value PostgreSQL cannot take (SQLSTATE class 22: a claim that is
 * not an integer for an integer column, a NUL byte) is a bad credential; any other
 * failure is the database being unavailable (fail closed).
 */
export async function query<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code)) {
      throw invalid('a value the database cannot compare', { cause: err });
    }
    throw new ServiceUnavailableError('django database', { cause: err });
  }
}

/** @internal A `django_session.expire_date` as a time: `Date` (PostgreSQL) or UTC text (SQLite). */
export function expiryTime(value: Date | string): number {
  if (value instanceof Date) return value.getTime();
  // Django writes `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC on SQLite (USE_TZ = True).
  const iso = `${value.trim().replace(' ', 'T').slice(0, 23)}Z`;
  const time = Date.parse(iso);
  return Number.isNaN(time) ? 0 : time;
}

/** The source of a Django app's users (SPEC §3 identity), whichever credential named them. */
export const DJANGO_SOURCE = 'django';

/** @internal SQLite's 0/1, PostgreSQL's booleans. */
export function truthy(value: boolean | number | string): boolean {
  return value === true || value === 1 || value === '1';
}

/**
 * @internal The {@link User} of an active user row. Django's `ModelBackend`, DRF's
 * `TokenAuthentication` and SimpleJWT all refuse inactive users.
 * @throws {AuthenticationError} for an inactive user.
 */
export function activeUser(
  row: Pick<DjangoUserRow, 'id' | 'username' | 'is_staff' | 'is_active'>,
): User {
  if (!truthy(row.is_active)) throw invalid('user inactive or deleted');
  return Object.freeze({
    source: DJANGO_SOURCE,
    id: String(row.id),
    username: row.username,
    isStaff: truthy(row.is_staff),
    isAnonymous: false,
  });
}
