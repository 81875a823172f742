/**
 * Django REST Framework tokens (`rest_framework.authtoken`), looked up in the Django
 * app's `authtoken_token` table (SPEC §3, §11).
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { AuthResult, Authenticator } from '../../authenticator.js';
import { credentialDigest } from '../../verification-cache.js';
import { assertName, invalid } from '../jwt.js';
import { CredentialRegistry, registerDjangoAuthenticator } from './registry.js';
import { recheckAlone } from './revalidation.js';
import { activeUser, assertDb, query, userTable as resolveUserTable } from './schema.js';
import type { DjangoDatabase } from './schema.js';

/** Options of {@link drfTokenAuthenticator}. */
export interface DrfTokenAuthenticatorOptions {
  /** The Django app's database. */
  readonly db: Kysely<DjangoDatabase>;
  /**
   * Which credentials are taken for DRF keys:
   * - `'generated'`: exactly what DRF generates, 40 lowercase hex characters; anything
   *   else goes to the next authenticator.
   * - `'any'`: any key DRF would accept from an `Authorization: Token` header (1 to 255
   *   printable ASCII characters without spaces), for keys set by hand. Put the
   *   authenticator last in the chain: it recognises everything the others declined.
   *
   * @default 'generated'
   */
  readonly keys?: 'generated' | 'any';
  /**
   * The user table: `auth_user`, or the table of a custom `AUTH_USER_MODEL` with the
   * same columns (`id`, `username`, `is_staff`, `is_active`, `password`).
   *
   * @default 'auth_user'
   */
  readonly userTable?: string;
  /**
   * Name recorded in `scope.auth.authenticator`.
   *
   * @default 'drf-token'
   */
  readonly name?: string;
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** DRF keys are `binascii.hexlify(os.urandom(20))`: exactly 40 lowercase hex characters. */
const GENERATED_KEY = /^[0-9a-f]{40}$/;
/** What DRF's `TokenAuthentication` reads after `Token `: one word without spaces. */
const ANY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * Creates an authenticator for Django REST Framework tokens, looked up in the Django
 * app's `authtoken_token` table. A token of an inactive or deleted user is refused. DRF
 * tokens do not expire, so `expiresAt` is `null`; deleting the row (DRF's logout)
 * refuses the token from the next handshake on, and {@link djangoRevalidator} closes
 * the sockets it opened.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { Kysely, SqliteDialect } from 'kysely';
 * const db = new Kysely<DjangoDatabase>({
 *   dialect: new SqliteDialect({ database: new Database('/srv/app/db.sqlite3', { readonly: true }) }),
 * });
 * const drf = drfTokenAuthenticator({ db });
 * ```
 *
 * @throws {TypeError} at construction when `db` is missing or an option is malformed.
 * @throws {AuthenticationError} from `authenticate`: `ERR_INVALID_CREDENTIALS` for an
 *   unknown key or an inactive user.
 * @throws {ServiceUnavailableError} from `authenticate` when the database query fails.
 */
export function drfTokenAuthenticator(options: DrfTokenAuthenticatorOptions): Authenticator {
  const label = 'drfTokenAuthenticator';
  const { db, keys = 'generated', name = 'drf-token', now = Date.now } = options;
  assertDb(label, db);
  assertName(label, name);
  if (keys !== 'generated' && keys !== 'any') {
    throw new TypeError(`${label}: "keys" must be 'generated' or 'any'`);
  }
  const users = resolveUserTable(label, options.userTable ?? 'auth_user');
  const recognised = keys === 'generated' ? GENERATED_KEY : ANY_KEY;
  const registry = new CredentialRegistry();
  const authenticator: Authenticator = {
    name,
    recheck: (sessions) => recheck(sessions),
    async authenticate(credential) {
      if (!recognised.test(credential)) return undefined;
      const row = await query(() =>
        db
          .selectFrom('authtoken_token')
          .innerJoin(users, 'auth_user.id', 'authtoken_token.user_id')
          .select([
            'auth_user.id as id',
            'auth_user.username as username',
            'auth_user.is_staff as is_staff',
            'auth_user.is_active as is_active',
          ])
          .where('authtoken_token.key', '=', credential)
          .executeTakeFirst(),
      );
      if (row === undefined) throw invalid('unknown token');
      const user = activeUser(row);
      // The key is the secret itself, so its id is a digest prefix, never the key.
      const credentialId = `drf-${credentialDigest(credential).slice(0, 16)}`;
      registry.remember(credentialId, { kind: 'drf-token', key: credential }, now());
      return { user, credentialId, expiresAt: null } satisfies AuthResult;
    },
  };
  const recheck = recheckAlone(authenticator);
  return registerDjangoAuthenticator(authenticator, {
    kind: 'drf-token',
    db,
    userTable: users,
    registry,
  });
}
