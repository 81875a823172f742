/**
 * Django session cookies (SPEC §11): the `sessionid` cookie of Django's `db` and
 * `cached_db` session backends (a key into `django_session`) or of its `signed_cookies`
 * backend (the signed session itself), verified with `SECRET_KEY` as
 * `django.contrib.sessions` and `django.contrib.auth.get_user` do, the session auth hash
 * included, so that a password change logs the sockets out as it logs out HTTP.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { AuthContext, AuthResult, Authenticator } from '../../authenticator.js';
import { constantTimeEqual } from '../../tokens.js';
import { credentialDigest } from '../../verification-cache.js';
import { assertName, invalid } from '../jwt.js';
import { CredentialRegistry, registerDjangoAuthenticator } from './registry.js';
import { recheckAlone } from './revalidation.js';
import {
  activeUser,
  assertDb,
  expiryTime,
  query,
  userTable as resolveUserTable,
} from './schema.js';
import type { DjangoDatabase } from './schema.js';
import { BadSignature, decodeLegacySession, loadsSigned, saltedHmac } from './signing.js';

/** Options of {@link djangoSessionAuthenticator}. */
export interface DjangoSessionAuthenticatorOptions {
  /** The Django app's database (`django_session` and the user table). */
  readonly db: Kysely<DjangoDatabase>;
  /** Django's `SECRET_KEY`, which signs session data and the session auth hash. */
  readonly secretKey: string;
  /**
   * `SESSION_COOKIE_NAME`: only a cookie of this name is read as a session, never a
   * header or another transport (a session id outside its cookie would escape the
   * Origin rule that stops cross-site hijacking). Read the cookie with the auth
   * middleware's `transports.cookie` list.
   *
   * @default 'sessionid'
   */
  readonly cookieName?: string;
  /**
   * `SESSION_COOKIE_AGE` in seconds: how long a `signed_cookies` session lives after
   * Django signed it.
   *
   * @default 1209600 (two weeks, Django's default)
   */
  readonly cookieAge?: number;
  /**
   * The user table: `auth_user`, or a custom `AUTH_USER_MODEL`'s table of the same shape.
   *
   * @default 'auth_user'
   */
  readonly userTable?: string;
  /**
   * Name recorded in `scope.auth.authenticator`.
   *
   * @default 'django-session'
   */
  readonly name?: string;
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** `django.contrib.auth`'s session keys. */
const SESSION_USER_ID = '_auth_user_id';
const SESSION_BACKEND = '_auth_user_backend';
const SESSION_HASH = '_auth_user_hash';
/** `SessionBase.key_salt` of the `db` and `cached_db` backends (class `SessionStore`). */
const DB_SESSION_SALT = 'django.contrib.sessions.SessionStore';
const DB_SESSION_CLASS = 'SessionStore';
const SIGNED_COOKIE_SALT = 'django.contrib.sessions.backends.signed_cookies';
const AUTH_HASH_SALT = 'django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash';
/** `django_session.session_key` is a `varchar(40)`; Django makes 32 of `[a-z0-9]`. */
const SESSION_KEY = /^[A-Za-z0-9]{1,40}$/;
const DEFAULT_COOKIE_AGE = 1_209_600; // 2 weeks, in seconds

/** The user a session names, as `get_user` reads it. */
export interface SessionUser {
  readonly userId: string;
  readonly hash: string;
}

/**
 * @internal `SessionBase.decode`: the signed format (Django 3.1+), else the legacy one;
 * `undefined` when neither verifies (Django reads that as an empty session).
 */
export function decodeSessionData(data: string, secretKey: string): unknown {
  try {
    return loadsSigned(data, { secret: secretKey, salt: DB_SESSION_SALT }).value;
  } catch (error) {
    if (!(error instanceof BadSignature)) throw error;
  }
  try {
    return decodeLegacySession(data, secretKey, DB_SESSION_CLASS);
  } catch {
    return undefined;
  }
}

/** The logged-in user of a session dictionary, or `undefined` for an anonymous one. */
export function sessionUser(session: unknown): SessionUser | undefined {
  if (typeof session !== 'object' || session === null || Array.isArray(session)) return undefined;
  const record = session as Record<string, unknown>;
  const userId = record[SESSION_USER_ID];
  const backend = record[SESSION_BACKEND];
  const hash = record[SESSION_HASH];
  // get_user: no id or backend is an anonymous session; no hash fails verification.
  if (typeof userId !== 'string' && typeof userId !== 'number') return undefined;
  if (typeof backend !== 'string' || typeof hash !== 'string' || hash === '') return undefined;
  const id = String(userId);
  return id === '' ? undefined : { userId: id, hash };
}

/**
 * `AbstractBaseUser.get_session_auth_hash` for a password hash: SHA-256 (Django 3.1+)
 * and the legacy SHA-1 that Django 3.2 also accepts.
 */
export function sessionAuthHashes(password: string, secretKey: string): readonly string[] {
  return [
    saltedHmac(AUTH_HASH_SALT, password, secretKey, 'sha256').toString('hex'),
    saltedHmac(AUTH_HASH_SALT, password, secretKey, 'sha1').toString('hex'),
  ];
}

/**
 * Creates an authenticator for Django session cookies. It reads only the cookie named
 * `cookieName` (the context's `cookie`), so put the cookie name in the auth middleware's
 * `transports.cookie` list; the Origin allow-list applies to it like any cookie.
 *
 * A session is accepted when it exists and has not expired (`db`/`cached_db`), or its
 * signature is younger than `cookieAge` (`signed_cookies`); its data verifies with
 * `secretKey`; it names a user who exists and is active; and its session auth hash
 * matches that user's current password hash. Sessions have no expiry of their own here:
 * {@link djangoRevalidator} closes a socket whose session ended (4401 `token revoked`).
 *
 * @example
 * ```ts
 * const session = djangoSessionAuthenticator({ db, secretKey: process.env.DJANGO_SECRET_KEY! });
 * const auth = authMiddleware({
 *   authenticators: [session, drfTokenAuthenticator({ db })],
 *   transports: { cookie: ['sessionid', 'key'] },
 *   allowedOrigins: ['https://app.example.com'],
 * });
 * ```
 *
 * @throws {TypeError | RangeError} at construction for a missing `db` or `secretKey`, or
 *   a malformed option.
 * @throws {AuthenticationError} from `authenticate`: `ERR_INVALID_CREDENTIALS` for an
 *   unknown, expired, tampered or anonymous session, an inactive user or a changed password.
 * @throws {ServiceUnavailableError} from `authenticate` when the database query fails.
 */
export function djangoSessionAuthenticator(
  options: DjangoSessionAuthenticatorOptions,
): Authenticator {
  const label = 'djangoSessionAuthenticator';
  const {
    db,
    secretKey,
    cookieName = 'sessionid',
    cookieAge = DEFAULT_COOKIE_AGE,
    name = 'django-session',
    now = Date.now,
  } = options;
  assertDb(label, db);
  assertName(label, name);
  if (typeof secretKey !== 'string' || secretKey === '') {
    throw new TypeError(`${label}: "secretKey" must be Django's SECRET_KEY (a non-empty string)`);
  }
  if (typeof cookieName !== 'string' || cookieName === '') {
    throw new TypeError(`${label}: "cookieName" must be a non-empty string`);
  }
  if (!Number.isInteger(cookieAge) || cookieAge < 1) {
    throw new RangeError(`${label}: "cookieAge" must be a positive number of seconds`);
  }
  const users = resolveUserTable(label, options.userTable ?? 'auth_user');
  const registry = new CredentialRegistry();
  const hashesOf = (password: string): readonly string[] => sessionAuthHashes(password, secretKey);

  /** `get_user` after the session is read: the user exists, is active, the hash holds. */
  async function userOf(named: SessionUser): Promise<AuthResult['user']> {
    const row = await query(() =>
      db
        .selectFrom(users)
        .select(['id', 'username', 'is_staff', 'is_active', 'password'])
        .where('id', '=', named.userId)
        .executeTakeFirst(),
    );
    if (row === undefined) throw invalid('session user deleted');
    const user = activeUser(row);
    if (!hashesOf(row.password).some((hash) => constantTimeEqual(hash, named.hash))) {
      throw invalid('session auth hash mismatch (password changed)');
    }
    return user;
  }

  async function databaseSession(key: string): Promise<AuthResult> {
    if (!SESSION_KEY.test(key)) throw invalid('malformed session key');
    const row = await query(() =>
      db
        .selectFrom('django_session')
        .select(['session_data', 'expire_date'])
        .where('session_key', '=', key)
        .executeTakeFirst(),
    );
    if (row === undefined) throw invalid('unknown session');
    if (expiryTime(row.expire_date) <= now()) throw invalid('session expired');
    const named = sessionUser(decodeSessionData(row.session_data, secretKey));
    if (named === undefined)
      throw invalid('anonymous session or session data that does not verify');
    const user = await userOf(named);
    const credentialId = `session-${credentialDigest(key).slice(0, 16)}`;
    registry.remember(
      credentialId,
      { kind: 'session', key, data: row.session_data, userId: named.userId, hash: named.hash },
      now(),
    );
    return { user, credentialId, expiresAt: null };
  }

  async function signedCookieSession(cookie: string): Promise<AuthResult> {
    let decoded;
    try {
      decoded = loadsSigned(cookie, {
        secret: secretKey,
        salt: SIGNED_COOKIE_SALT,
        maxAge: cookieAge,
        now,
      });
    } catch (error) {
      if (error instanceof BadSignature)
        throw invalid('session cookie does not verify or is too old');
      throw error;
    }
    const named = sessionUser(decoded.value);
    if (named === undefined) throw invalid('anonymous session');
    const user = await userOf(named);
    const credentialId = `session-${credentialDigest(cookie).slice(0, 16)}`;
    registry.remember(
      credentialId,
      {
        kind: 'signed-session',
        userId: named.userId,
        hash: named.hash,
        signedAt: decoded.signedAt,
      },
      now(),
    );
    return { user, credentialId, expiresAt: null };
  }

  const mine = (context: AuthContext): boolean =>
    context.transport === 'cookie' && context.cookie === cookieName;
  const authenticator: Authenticator = {
    name,
    recheck: (sessions) => recheck(sessions),
    authenticate(credential, context) {
      if (!mine(context)) return Promise.resolve(undefined);
      // A db session key never holds ':'; a signed cookie always does.
      return credential.includes(':')
        ? signedCookieSession(credential)
        : databaseSession(credential);
    },
  };
  const recheck = recheckAlone(authenticator);
  return registerDjangoAuthenticator(authenticator, {
    kind: 'session',
    db,
    userTable: users,
    registry,
    sessionHashes: hashesOf,
    decodeSession: (data) => sessionUser(decodeSessionData(data, secretKey)),
    cookieAge,
  });
}
