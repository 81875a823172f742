/**
 * Gateway mode for a Django app (SPEC §3): Django REST Framework tokens and SimpleJWT
 * access tokens, read against that app's database (SQLite or PostgreSQL, through Kysely)
 * or its signing key, so its users reach the WebSockets with the credentials they already have.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { ServiceUnavailableError } from '../../errors.js';
import type { AuthResult, Authenticator } from '../authenticator.js';
import type { User } from '../user.js';
import { credentialDigest } from '../verification-cache.js';
import {
  assertName,
  createJwtVerifier,
  invalid,
  resolveClaimNames,
  userFromClaims,
} from './jwt.js';
import type {
  JwtAlgorithm,
  JwtAuthenticator,
  JwtAuthenticatorOptions,
  JwtCacheOptions,
  JwtPublicKey,
} from './jwt.js';

/**
 * Django's `auth_user` table, as far as authentication reads it. Integer columns may come
 * back as strings (PostgreSQL `bigint`) and booleans as 0/1 (SQLite).
 */
export interface DjangoAuthUserTable {
  id: number | string;
  username: string;
  is_staff: boolean | number;
  is_active: boolean | number;
}

/** DRF's `authtoken_token` table: the plaintext 40-hex key, its user, its creation time. */
export interface DjangoAuthTokenTable {
  key: string;
  user_id: number | string;
  created: Date | string;
}

/**
 * The tables of a Django database these authenticators read. Pass your own
 * `Kysely<YourDatabase>` as `Kysely<DjangoDatabase>` (it needs only these two tables).
 */
export interface DjangoDatabase {
  auth_user: DjangoAuthUserTable;
  authtoken_token: DjangoAuthTokenTable;
}

/** Options of {@link drfTokenAuthenticator}. */
export interface DrfTokenAuthenticatorOptions {
  /** The Django app's database. */
  readonly db: Kysely<DjangoDatabase>;
  /**
   * Name recorded in `scope.auth.authenticator`.
   *
   * @default 'drf-token'
   */
  readonly name?: string;
}

/** DRF keys are `binascii.hexlify(os.urandom(20))`: exactly 40 lowercase hex characters. */
const DRF_KEY = /^[0-9a-f]{40}$/;

/**
 * Creates an authenticator for Django REST Framework tokens (`rest_framework.authtoken`),
 * looked up in the Django app's `authtoken_token` table. A token of an inactive or deleted
 * user is refused. DRF tokens do not expire, so `expiresAt` is `null`; deleting the row
 * (DRF's logout) refuses the token from the next handshake on.
 *
 * Recognises exactly the DRF key shape (40 lowercase hex characters); anything else is
 * passed to the next authenticator.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { Kysely, SqliteDialect } from 'kysely';
 * const db = new Kysely<DjangoDatabase>({
 *   dialect: new SqliteDialect({ database: new Database('/srv/app/db.sqlite3') }),
 * });
 * const drf = drfTokenAuthenticator({ db });
 * ```
 *
 * @throws {TypeError} at construction when `db` is missing.
 * @throws {AuthenticationError} from `authenticate`: `ERR_INVALID_CREDENTIALS` for an
 *   unknown key or an inactive user.
 * @throws {ServiceUnavailableError} from `authenticate` when the database query fails.
 */
export function drfTokenAuthenticator(options: DrfTokenAuthenticatorOptions): Authenticator {
  const { db, name = 'drf-token' } = options;
  assertDb('drfTokenAuthenticator', db);
  assertName('drfTokenAuthenticator', name);
  return {
    name,
    async authenticate(credential) {
      if (!DRF_KEY.test(credential)) return undefined;
      const row = await query(() =>
        db
          .selectFrom('authtoken_token')
          .innerJoin('auth_user', 'auth_user.id', 'authtoken_token.user_id')
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
      return {
        user: activeUser(row),
        // The key is the secret itself, so its id is a digest prefix, never the key.
        credentialId: `drf-${credentialDigest(credential).slice(0, 16)}`,
        expiresAt: null,
      } satisfies AuthResult;
    },
  };
}

/** Options of {@link simpleJwtAuthenticator}, mirroring SimpleJWT's `SIMPLE_JWT` settings. */
export interface SimpleJwtAuthenticatorOptions {
  /**
   * `SIGNING_KEY` (by default Django's `SECRET_KEY`) for the HMAC algorithms; at least 32 bytes.
   * Give this or `verifyingKey`.
   */
  readonly signingKey?: string | Uint8Array;
  /** `VERIFYING_KEY` for the RSA/EC algorithms. Give this or `signingKey`. */
  readonly verifyingKey?: JwtPublicKey;
  /**
   * `ALGORITHM`.
   *
   * @default 'HS256'
   */
  readonly algorithm?: JwtAlgorithm;
  /**
   * `USER_ID_CLAIM`.
   *
   * @default 'user_id'
   */
  readonly userIdClaim?: string;
  /**
   * Required value of the token type claim; a refresh token presented here is refused.
   *
   * @default 'access'
   */
  readonly tokenType?: string;
  /**
   * `TOKEN_TYPE_CLAIM`.
   *
   * @default 'token_type'
   */
  readonly tokenTypeClaim?: string;
  /** `ISSUER`, checked when set. */
  readonly issuer?: string;
  /** `AUDIENCE`, checked when set. */
  readonly audience?: string | readonly string[];
  /**
   * `LEEWAY`, in seconds.
   *
   * @default 0
   */
  readonly leeway?: number;
  /**
   * The Django app's database. When given, the user is read from `auth_user` on every
   * handshake (an inactive or deleted user is refused); otherwise it comes from the
   * token's claims (`username`, `is_staff` when a custom serializer adds them).
   */
  readonly db?: Kysely<DjangoDatabase>;
  /** Verification cache, as for `jwtAuthenticator`; the database is still read every time. */
  readonly cache?: false | JwtCacheOptions;
  /**
   * Name recorded in `scope.auth.authenticator`.
   *
   * @default 'simplejwt'
   */
  readonly name?: string;
  /** Clock in milliseconds since the epoch. Tests pass a fake one. */
  readonly now?: () => number;
}

/**
 * Creates an authenticator for SimpleJWT (`djangorestframework-simplejwt`) access tokens,
 * verified with jose exactly as {@link jwtAuthenticator} does (`alg` pinned to `algorithm`,
 * `exp` required), plus SimpleJWT's own rules: the `jti` and user id claims are required
 * and the token type must be `tokenType`.
 *
 * Like every JWT authenticator it recognises any JWT-shaped credential, so put it before a
 * generic `jwtAuthenticator`, or use only one of them.
 *
 * @example
 * ```ts
 * const simplejwt = simpleJwtAuthenticator({
 *   signingKey: process.env.DJANGO_SECRET_KEY!,
 *   db, // read is_active and is_staff from auth_user
 * });
 * ```
 *
 * @throws {TypeError} at construction when not exactly one of `signingKey` and
 *   `verifyingKey` is given, or `algorithm` does not fit it.
 * @throws {RangeError} at construction when `signingKey` is shorter than 32 bytes.
 * @throws {AuthenticationError} from `authenticate`: `ERR_TOKEN_EXPIRED` past `exp`,
 *   `ERR_INVALID_CREDENTIALS` otherwise (bad signature, refresh token, inactive user...).
 * @throws {ServiceUnavailableError} from `authenticate` when the database query fails.
 */
export function simpleJwtAuthenticator(options: SimpleJwtAuthenticatorOptions): JwtAuthenticator {
  const label = 'simpleJwtAuthenticator';
  const {
    signingKey,
    verifyingKey,
    algorithm = 'HS256',
    userIdClaim = 'user_id',
    tokenType = 'access',
    tokenTypeClaim = 'token_type',
    issuer,
    audience,
    leeway = 0,
    db,
    cache,
    name = 'simplejwt',
    now,
  } = options;
  assertName(label, name);
  if (db !== undefined) assertDb(label, db);
  if (!Number.isFinite(leeway) || leeway < 0) {
    throw new RangeError(`${label}: "leeway" must be a non-negative number of seconds`);
  }

  const common = {
    algorithms: [algorithm],
    clockTolerance: leeway,
    ...(issuer === undefined ? {} : { issuer }),
    ...(audience === undefined ? {} : { audience }),
    ...(cache === undefined ? {} : { cache }),
    ...(now === undefined ? {} : { now }),
  };
  let jwtOptions: JwtAuthenticatorOptions;
  if (signingKey !== undefined && verifyingKey === undefined) {
    jwtOptions = { ...common, secret: signingKey };
  } else if (verifyingKey !== undefined && signingKey === undefined) {
    jwtOptions = { ...common, publicKey: verifyingKey };
  } else {
    throw new TypeError(`${label}: exactly one of "signingKey" or "verifyingKey" is required`);
  }

  const verifier = createJwtVerifier(jwtOptions, {
    label,
    secretOption: 'signingKey',
    publicKeyOption: 'verifyingKey',
    userIdClaim,
    requiredClaims: ['jti', tokenTypeClaim],
    validate(payload) {
      if (payload[tokenTypeClaim] !== tokenType) throw invalid('wrong token type');
    },
  });
  const claimNames = resolveClaimNames({ id: userIdClaim, username: 'username' });

  return {
    name,
    async authenticate(credential) {
      const verified = await verifier.verify(credential);
      if (verified === undefined) return undefined;
      let user: User;
      if (db === undefined) {
        user = userFromClaims(verified.payload, claimNames, DJANGO_SOURCE);
      } else {
        // Pass the claim as it came (SimpleJWT keeps integer ids as integers) so that both
        // SQLite and PostgreSQL compare it with an integer column without a cast.
        const raw = verified.payload[userIdClaim] as string | number;
        const row = await query(() =>
          db
            .selectFrom('auth_user')
            .select(['id', 'username', 'is_staff', 'is_active'])
            .where('id', '=', raw)
            .executeTakeFirst(),
        );
        if (row === undefined) throw invalid('unknown user');
        user = activeUser(row);
      }
      return {
        user,
        credentialId: verified.credentialId,
        expiresAt: verified.expiresAt,
      } satisfies AuthResult;
    },
    invalidateCredential: (credentialId) => verifier.invalidateCredential(credentialId),
    invalidateUser: (userId) => verifier.invalidateUser(userId),
  };
}

function assertDb(label: string, db: unknown): void {
  if (
    typeof db !== 'object' ||
    db === null ||
    typeof (db as { selectFrom?: unknown }).selectFrom !== 'function'
  ) {
    throw new TypeError(`${label}: "db" must be a Kysely instance`);
  }
}

/** The source of a Django app's users (SPEC §3 identity), whichever credential named them. */
export const DJANGO_SOURCE = 'django';

async function query<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new ServiceUnavailableError('database', { cause: err });
  }
}

function activeUser(
  row: Pick<DjangoAuthUserTable, 'id' | 'username' | 'is_staff' | 'is_active'>,
): User {
  // Django's ModelBackend and DRF's TokenAuthentication both refuse inactive users.
  if (!truthy(row.is_active)) throw invalid('user inactive or deleted');
  return Object.freeze({
    source: DJANGO_SOURCE,
    id: String(row.id),
    username: row.username,
    isStaff: truthy(row.is_staff),
    isAnonymous: false,
  });
}

function truthy(value: boolean | number): boolean {
  return value === true || value === 1;
}
