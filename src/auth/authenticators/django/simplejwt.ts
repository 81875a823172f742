/**
 * SimpleJWT (`djangorestframework-simplejwt`) access tokens, verified with the Django
 * app's signing key and, when the database is given, read against its user table so
 * that `is_active` and `is_staff` are current (SPEC §3, §11).
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { AuthResult } from '../../authenticator.js';
import type { User } from '../../user.js';
import {
  assertName,
  createJwtVerifier,
  invalid,
  resolveClaimNames,
  userFromClaims,
} from '../jwt.js';
import type {
  JwtAlgorithm,
  JwtAuthenticator,
  JwtAuthenticatorOptions,
  JwtCacheOptions,
  JwtPublicKey,
} from '../jwt.js';
import { CredentialRegistry, registerDjangoAuthenticator } from './registry.js';
import { recheckAlone } from './revalidation.js';
import {
  activeUser,
  assertDb,
  DJANGO_SOURCE,
  query,
  userTable as resolveUserTable,
} from './schema.js';
import type { DjangoDatabase } from './schema.js';

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
   * `USER_ID_FIELD`: the user table column the user id claim names (with `db`).
   *
   * @default 'id'
   */
  readonly userIdField?: string;
  /**
   * Accepted values of the token type claim: the `token_type` of the classes in
   * `AUTH_TOKEN_CLASSES` (`access`, `sliding`). A refresh token is never accepted.
   *
   * @default 'access'
   */
  readonly tokenType?: string | readonly string[];
  /**
   * `TOKEN_TYPE_CLAIM`.
   *
   * @default 'token_type'
   */
  readonly tokenTypeClaim?: string;
  /**
   * `JTI_CLAIM`, required in every token; `null` requires none (as SimpleJWT does).
   *
   * @default 'jti'
   */
  readonly jtiClaim?: string | null;
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
   * The Django app's database. When given, the user is read from the user table on every
   * handshake (an inactive or deleted user is refused); otherwise it comes from the
   * token's claims (`username`, `is_staff` when a custom serializer adds them).
   */
  readonly db?: Kysely<DjangoDatabase>;
  /**
   * The user table (with `db`): `auth_user`, or a custom `AUTH_USER_MODEL`'s table.
   *
   * @default 'auth_user'
   */
  readonly userTable?: string;
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

const COLUMN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Creates an authenticator for SimpleJWT access tokens, verified with jose exactly as
 * `jwtAuthenticator` does (`alg` pinned to `algorithm`, `exp` required), plus SimpleJWT's
 * own rules: the `jti` and user id claims are required and the token type must be one of
 * `tokenType` (never `refresh`).
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
 *   `verifyingKey` is given, `algorithm` does not fit it, or a claim, column or token
 *   type is malformed (`refresh` included).
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
    userIdField = 'id',
    tokenType = 'access',
    tokenTypeClaim = 'token_type',
    jtiClaim = 'jti',
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
  for (const [option, value] of Object.entries({ userIdClaim, tokenTypeClaim })) {
    if (typeof value !== 'string' || value === '') {
      throw new TypeError(`${label}: "${option}" must be a non-empty string`);
    }
  }
  if (jtiClaim !== null && (typeof jtiClaim !== 'string' || jtiClaim === '')) {
    throw new TypeError(`${label}: "jtiClaim" must be a non-empty string or null`);
  }
  if (typeof userIdField !== 'string' || !COLUMN.test(userIdField)) {
    throw new TypeError(`${label}: "userIdField" must be a column name (letters, digits, _)`);
  }
  const tokenTypes: readonly string[] = typeof tokenType === 'string' ? [tokenType] : tokenType;
  if (
    !Array.isArray(tokenTypes) ||
    tokenTypes.length === 0 ||
    tokenTypes.some((type) => typeof type !== 'string' || type === '' || type === 'refresh')
  ) {
    // SPEC §3: a refresh token is refused whatever its claims.
    throw new TypeError(
      `${label}: "tokenType" must name access token types (such as 'access' or 'sliding'), never 'refresh'`,
    );
  }
  const users = resolveUserTable(label, options.userTable ?? 'auth_user');

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
    requiredClaims: jtiClaim === null ? [tokenTypeClaim] : [jtiClaim, tokenTypeClaim],
    validate(payload) {
      const type = payload[tokenTypeClaim];
      if (typeof type !== 'string' || !tokenTypes.includes(type)) {
        throw invalid('wrong token type');
      }
    },
  });
  const claimNames = resolveClaimNames({ id: userIdClaim, username: 'username' });

  const authenticator: JwtAuthenticator = {
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
            .selectFrom(users)
            .select(['id', 'username', 'is_staff', 'is_active'])
            .where(userIdField as 'id', '=', raw)
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
  // Without the database there is nothing to re-check: the token holds until its exp.
  if (db !== undefined) {
    const recheck = recheckAlone(authenticator);
    authenticator.recheck = (sessions) => recheck(sessions);
  }
  return registerDjangoAuthenticator(authenticator, {
    kind: 'simplejwt',
    db,
    userTable: users,
    registry: new CredentialRegistry(),
  });
}
