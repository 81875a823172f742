/**
 * Re-checking live Django credentials in bulk (SPEC §11): a DRF token deleted, a session
 * ended, a user deactivated or deleted, or a password changed under a session. However
 * many sockets are live, one check is at most three queries (tokens, sessions, users),
 * each with the whole list as one parameter.
 *
 * @module
 */
import { PostgresAdapter, sql } from 'kysely';
import type { Kysely, RawBuilder } from 'kysely';
import type { Authenticator } from '../../authenticator.js';
import { constantTimeEqual } from '../../tokens.js';
import type { AuthInfo, User } from '../../user.js';
import { djangoStateOf } from './registry.js';
import type { DjangoAuthenticatorState, TrackedCredential } from './registry.js';
import { expiryTime, query, truthy } from './schema.js';
import type { DjangoDatabase } from './schema.js';

/** A live connection as the revalidator reads it (the auth middleware's `LiveSession`). */
export interface RevalidatedSession {
  readonly user: User;
  readonly auth: AuthInfo;
}

/** Options of {@link djangoRevalidator}. */
export interface DjangoRevalidatorOptions {
  /**
   * The authenticators whose sockets are re-checked, as made by
   * `drfTokenAuthenticator`, `djangoSessionAuthenticator` and `simpleJwtAuthenticator`
   * (with `db`), all on the same database. Sessions of other authenticators are left alone.
   */
  readonly authenticators: readonly Authenticator[];
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** What one re-check found. */
export interface RevalidationResult<S> {
  /** The sessions whose credential no longer holds: close them (4401 `token revoked`). */
  readonly revoked: S[];
  /** How many of the given sessions were Django's and checked. */
  readonly checked: number;
  /** Database round trips made (at most 3). */
  readonly queries: number;
}

/**
 * Re-checks live Django sessions: call it on an interval with every live session of the
 * auth middleware and close what it returns. Checks, per socket, what Django checks per
 * request:
 *
 * - every Django credential: the user still exists and is active;
 * - a DRF token: its `authtoken_token` row still exists;
 * - a `db`/`cached_db` session: its row still exists and has not expired, and still names
 *   the same user; its session auth hash matches the user's current password hash;
 * - a `signed_cookies` session: younger than `SESSION_COOKIE_AGE`, and the same hash check.
 *
 * SimpleJWT sockets also close at their token's `exp` (the middleware's own expiry).
 *
 * @example
 * ```ts
 * const revalidate = djangoRevalidator({ authenticators: [session, simplejwt, drf] });
 * setInterval(async () => {
 *   const { revoked } = await revalidate(liveSessions());
 *   for (const session of revoked) close(session, 4401, 'token revoked');
 * }, 5_000);
 * ```
 * @throws {TypeError} at construction for an authenticator the Django factories did not
 *   make, a SimpleJWT one without `db`, or authenticators on different databases.
 * @throws {ServiceUnavailableError} from the returned function when the database fails:
 *   nothing is known, so keep the sockets and try again.
 */
export function djangoRevalidator(
  options: DjangoRevalidatorOptions,
): <S extends RevalidatedSession>(sessions: readonly S[]) => Promise<RevalidationResult<S>> {
  const label = 'djangoRevalidator';
  const { authenticators, now = Date.now } = options;
  if (!Array.isArray(authenticators) || authenticators.length === 0) {
    throw new TypeError(`${label}: "authenticators" must be a non-empty array`);
  }
  const byName = new Map<string, DjangoAuthenticatorState>();
  let db: Kysely<DjangoDatabase> | undefined;
  let users: 'auth_user' | undefined;
  for (const authenticator of authenticators) {
    const state = djangoStateOf(authenticator);
    if (state === undefined) {
      throw new TypeError(
        `${label}: "${String(authenticator?.name)}" was not made by a Django authenticator factory`,
      );
    }
    if (state.db === undefined) {
      throw new TypeError(`${label}: "${authenticator.name}" has no "db" to re-check users in`);
    }
    if (db !== undefined && (state.db !== db || state.userTable !== users)) {
      throw new TypeError(
        `${label}: every authenticator must read the same database and user table`,
      );
    }
    db = state.db;
    users = state.userTable;
    byName.set(authenticator.name, state);
  }
  const database = db!;
  const userTable = users!;
  const postgres = database.getExecutor().adapter instanceof PostgresAdapter;

  /** `column` in `values`, as one parameter: `= any($1)` on PostgreSQL, `json_each` on SQLite. */
  const isOneOf = (column: string, values: readonly (string | number)[]): RawBuilder<boolean> =>
    postgres
      ? sql<boolean>`${sql.ref(column)} = any(${[...values]})`
      : sql<boolean>`${sql.ref(column)} in (select value from json_each(${JSON.stringify(values)}))`;
  // SQLite compares json_each's values with the integer id column as numbers only if they are.
  const idValue = (id: string): string | number =>
    /^(0|[1-9][0-9]{0,14})$/.test(id) ? Number(id) : id;
  /** The users of the last check's session sockets, with their hashes (never logged). */
  let passwordHashes = new Map<string, { password: string; hashes: readonly string[] }>();

  return async function revalidate<S extends RevalidatedSession>(
    sessions: readonly S[],
  ): Promise<RevalidationResult<S>> {
    const since = now();
    const revoked = new Set<S>();
    const live = new Map<DjangoAuthenticatorState, Set<string>>();
    const byUser = new Map<string, S[]>();
    const tokens = new Map<string, S[]>();
    const databaseSessions = new Map<string, { session: S; tracked: TrackedCredential }[]>();
    const hashChecks: { session: S; userId: string; hash: string }[] = [];
    let checked = 0;

    for (const session of sessions) {
      const state = byName.get(session.auth.authenticator);
      if (state === undefined || session.user.isAnonymous) continue;
      checked += 1;
      push(byUser, session.user.id, session);
      if (state.kind === 'simplejwt') continue;
      const credentialId = session.auth.credentialId;
      const tracked = credentialId === null ? undefined : state.registry.get(credentialId);
      if (credentialId !== null) {
        let ids = live.get(state);
        if (ids === undefined) live.set(state, (ids = new Set()));
        ids.add(credentialId);
      }
      // Accepted by this authenticator yet unknown to it: nothing can vouch for it.
      if (tracked === undefined) {
        revoked.add(session);
        continue;
      }
      switch (tracked.kind) {
        case 'drf-token':
          push(tokens, tracked.key, session);
          break;
        case 'session':
          push(databaseSessions, tracked.key, { session, tracked });
          break;
        case 'signed-session':
          if ((tracked.signedAt + (state.cookieAge ?? 0)) * 1000 <= since) revoked.add(session);
          else hashChecks.push({ session, userId: tracked.userId, hash: tracked.hash });
          break;
      }
    }

    let queries = 0;
    if (tokens.size > 0) {
      queries += 1;
      const rows = await query(() =>
        database
          .selectFrom('authtoken_token')
          .select('key')
          .where(isOneOf('key', [...tokens.keys()]))
          .execute(),
      );
      const present = new Set(rows.map((row) => row.key));
      for (const [key, holders] of tokens) {
        if (!present.has(key)) for (const session of holders) revoked.add(session);
      }
    }

    if (databaseSessions.size > 0) {
      queries += 1;
      const rows = await query(() =>
        database
          .selectFrom('django_session')
          .select(['session_key', 'session_data', 'expire_date'])
          .where(isOneOf('session_key', [...databaseSessions.keys()]))
          .execute(),
      );
      const found = new Map(rows.map((row) => [row.session_key, row]));
      for (const [key, holders] of databaseSessions) {
        const row = found.get(key);
        for (const { session, tracked } of holders) {
          if (tracked.kind !== 'session') continue;
          if (row === undefined || expiryTime(row.expire_date) <= since) {
            revoked.add(session);
            continue;
          }
          const { userId } = tracked;
          let { hash } = tracked;
          if (row.session_data !== tracked.data) {
            // Saved since (a new value, a rotated hash after a password change in this
            // session): read it again as Django would.
            const named = byName.get(session.auth.authenticator)?.decodeSession?.(row.session_data);
            if (named === undefined || named.userId !== userId) {
              revoked.add(session);
              continue;
            }
            hash = named.hash;
          }
          hashChecks.push({ session, userId, hash });
        }
      }
    }

    if (byUser.size > 0) {
      queries += 1;
      const rows = await query(() =>
        database
          .selectFrom(userTable)
          .select(['id', 'is_active', 'password'])
          .where(isOneOf('id', [...byUser.keys()].map(idValue)))
          .execute(),
      );
      const current = new Map(rows.map((row) => [String(row.id), row]));
      for (const [userId, holders] of byUser) {
        const row = current.get(userId);
        if (row === undefined || !truthy(row.is_active)) {
          for (const session of holders) revoked.add(session);
        }
      }
      // The session auth hashes of a password are HMACs: made once per user while the
      // password hash stays the same, however many sockets and checks need them.
      const seen = new Map<string, { password: string; hashes: readonly string[] }>();
      for (const { session, userId, hash } of hashChecks) {
        if (revoked.has(session)) continue;
        const row = current.get(userId);
        const state = byName.get(session.auth.authenticator);
        if (row === undefined || state?.sessionHashes === undefined) {
          revoked.add(session);
          continue;
        }
        let known = seen.get(userId) ?? passwordHashes.get(userId);
        if (known === undefined || known.password !== row.password) {
          known = { password: row.password, hashes: state.sessionHashes(row.password) };
        }
        seen.set(userId, known);
        if (!known.hashes.some((expected) => constantTimeEqual(expected, hash))) {
          revoked.add(session);
        }
      }
      passwordHashes = seen;
    }

    for (const state of byName.values())
      state.registry.retainOnly(live.get(state) ?? new Set(), since);
    return { revoked: [...revoked], checked, queries };
  };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/**
 * @internal `Authenticator.recheck` of one Django authenticator: its own sessions, in
 * two queries (its credentials, their users). The auth middleware calls it on its
 * re-check interval; {@link djangoRevalidator} checks several authenticators in three.
 */
export function recheckAlone(
  authenticator: Authenticator,
): <S extends RevalidatedSession>(sessions: readonly S[]) => Promise<S[]> {
  let revalidate: ReturnType<typeof djangoRevalidator> | undefined;
  return async (sessions) => {
    // Made on first use: the factory registers the authenticator after building it.
    revalidate ??= djangoRevalidator({ authenticators: [authenticator] });
    return (await revalidate(sessions)).revoked;
  };
}
