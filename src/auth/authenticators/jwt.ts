/**
 * JWT authenticator (SPEC §3): verifies a JWT with jose against a shared secret, a public
 * key or a JWKS URL, with `alg` pinned and `exp` required, and maps its claims to a user
 * with no database row.
 *
 * The verifier core here is shared with the SimpleJWT authenticator (`./django.js`), so
 * there is one place that decides what a valid JWT is.
 *
 * @module
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWK, JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
import { AuthenticationError, ServiceUnavailableError } from '../../errors.js';
import type { AuthResult, Authenticator } from '../authenticator.js';
import type { User } from '../user.js';
import { credentialDigest, VerificationCache } from '../verification-cache.js';

/** JWS algorithms a JWT authenticator can be pinned to. `none` is never one of them. */
export type JwtAlgorithm =
  | 'HS256'
  | 'HS384'
  | 'HS512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
  | 'Ed25519';

const HMAC_ALGORITHMS: ReadonlySet<string> = new Set(['HS256', 'HS384', 'HS512']);
const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output; HS256 needs 32 bytes. */
const MIN_SECRET_BYTES = 32;

/**
 * Longer JWT-shaped credentials are refused before any crypto. Node's default header limit
 * is 16 KiB, so no honest token is near it.
 */
const MAX_JWT_LENGTH = 16_384;

/** A public key: PEM (SPKI, or a private key PEM whose public half is used), KeyObject, CryptoKey or JWK. */
export type JwtPublicKey = string | KeyObject | CryptoKey | JWK;

/** Names of the claims a user is read from (SPEC §3). */
export interface JwtClaimNames {
  /**
   * Claim holding the user id (a non-empty string or an integer).
   *
   * @default 'sub'
   */
  readonly id?: string;
  /**
   * Claim, or claims tried in order, holding the username. When none is present the
   * username is the id.
   *
   * @default ['username', 'preferred_username']
   */
  readonly username?: string | readonly string[];
  /**
   * Claim holding the staff flag; only the boolean `true` makes a staff user.
   *
   * @default 'is_staff'
   */
  readonly isStaff?: string;
}

/** Options of the remote JWKS fetch (`jwksUrl` only). */
export interface JwksFetchOptions {
  /**
   * HTTP timeout in milliseconds. Past it the handshake fails closed with
   * `ServiceUnavailableError` (close 1013).
   *
   * @default 5_000
   */
  readonly timeoutMs?: number;
  /**
   * How long fetched keys are trusted, in milliseconds; `0` refetches on every verification
   * that is not served from the verification cache.
   *
   * @default 600_000 (10 minutes)
   */
  readonly cacheMaxAgeMs?: number;
  /**
   * Minimum time between two refetches triggered by an unknown `kid`, in milliseconds.
   *
   * @default 30_000
   */
  readonly cooldownMs?: number;
}

/** Options of the verification cache of a JWT authenticator. */
export interface JwtCacheOptions {
  /** @default 10_000 */
  readonly maxEntries?: number;
  /**
   * Longest time a verification is reused, in milliseconds (never past the token's `exp`).
   *
   * @default 600_000 (10 minutes)
   */
  readonly maxTtlMs?: number;
}

/** Options shared by every key source. */
export interface JwtCommonOptions {
  /**
   * Name recorded in `scope.auth.authenticator`.
   *
   * @default 'jwt'
   */
  readonly name?: string;
  /**
   * Accepted `alg` values. A token signed with any other algorithm is refused, which is
   * what stops HS/RS key confusion.
   *
   * @default ['HS256'] with a secret; ['RS256', 'ES256', 'EdDSA'] with a public key or JWKS
   */
  readonly algorithms?: readonly JwtAlgorithm[];
  /** Required `iss` value (or any of several). Unchecked when unset. */
  readonly issuer?: string | readonly string[];
  /** Required `aud` value (or any of several). Unchecked when unset. */
  readonly audience?: string | readonly string[];
  /**
   * Allowed clock skew for `exp` and `nbf`, in seconds. It is 0 by default so that a
   * token accepted here is never already past the expiry at which its connection is
   * closed (SPEC §3 Lifetime).
   *
   * @default 0
   */
  readonly clockTolerance?: number;
  /** Claim names the user is read from. */
  readonly claims?: JwtClaimNames;
  /**
   * Verification cache: a verified token is reused until its `exp` (bounded by
   * `maxTtlMs`) without calling jose again. `false` verifies every time.
   *
   * @default { maxEntries: 10_000, maxTtlMs: 600_000 }
   */
  readonly cache?: false | JwtCacheOptions;
  /**
   * Clock in milliseconds since the epoch, for `exp`/`nbf` and the cache. Tests pass a fake one.
   *
   * @default Date.now
   */
  readonly now?: () => number;
}

/** Verify with a shared HMAC secret (at least 32 bytes). */
export interface JwtSecretOptions extends JwtCommonOptions {
  readonly secret: string | Uint8Array;
  readonly jwksUrl?: never;
  readonly publicKey?: never;
}

/** Verify with the keys published at a JWKS URL. */
export interface JwtJwksOptions extends JwtCommonOptions {
  readonly jwksUrl: string | URL;
  readonly jwks?: JwksFetchOptions;
  readonly secret?: never;
  readonly publicKey?: never;
}

/** Verify with one public key. */
export interface JwtPublicKeyOptions extends JwtCommonOptions {
  readonly publicKey: JwtPublicKey;
  readonly secret?: never;
  readonly jwksUrl?: never;
}

/** Options of {@link jwtAuthenticator}: exactly one key source. */
export type JwtAuthenticatorOptions = JwtSecretOptions | JwtJwksOptions | JwtPublicKeyOptions;

/** An authenticator whose verification cache can be told about revocations. */
export interface JwtAuthenticator extends Authenticator {
  /**
   * Forgets cached verifications of one credential (its `jti` or digest id), so the next
   * use is verified again. Call it when the credential is revoked.
   */
  invalidateCredential(credentialId: string): void;
  /** Forgets cached verifications of every credential of one user. */
  invalidateUser(userId: string): void;
}

/**
 * Creates an authenticator for JWTs.
 *
 * A credential made of three base64url segments whose first decodes to a JSON header with
 * an `alg` is recognised as a JWT: from then on it is accepted or refused, never passed to
 * the next authenticator. Anything else is not recognised (`undefined`).
 *
 * @example
 * ```ts
 * const jwt = jwtAuthenticator({
 *   jwksUrl: 'https://auth.example.com/.well-known/jwks.json',
 *   issuer: 'https://auth.example.com/',
 *   audience: 'chat',
 * });
 * const result = await jwt.authenticate(token, { transport: 'header' });
 * result?.user.id; // the `sub` claim
 * ```
 *
 * @throws {TypeError} at construction when not exactly one of `secret`, `jwksUrl` and
 *   `publicKey` is given, or `algorithms` is empty, contains `none` or does not fit the key.
 * @throws {RangeError} at construction when the secret is shorter than 32 bytes or
 *   `clockTolerance` is negative.
 * @throws {AuthenticationError} from `authenticate`: `ERR_TOKEN_EXPIRED` past `exp`,
 *   `ERR_INVALID_CREDENTIALS` for any other invalid JWT.
 * @throws {ServiceUnavailableError} from `authenticate` when the JWKS URL cannot be fetched.
 */
export function jwtAuthenticator(options: JwtAuthenticatorOptions): JwtAuthenticator {
  const { name = 'jwt', claims = {} } = options;
  assertName('jwtAuthenticator', name);
  const claimNames = resolveClaimNames(claims);
  const verifier = createJwtVerifier(options, {
    label: 'jwtAuthenticator',
    secretOption: 'secret',
    publicKeyOption: 'publicKey',
    userIdClaim: claimNames.id,
    validate(payload) {
      // SPEC §3: a JWT that says it is not an access token (a SimpleJWT refresh token) is
      // refused whatever its other claims, so a refresh token never opens a socket.
      const tokenType = payload[TOKEN_TYPE_CLAIM];
      if (tokenType !== undefined && tokenType !== 'access') throw invalid('not an access token');
    },
  });
  const toResult = (verified: VerifiedJwt): AuthResult => ({
    user: userFromClaims(verified.payload, claimNames),
    credentialId: verified.credentialId,
    expiresAt: verified.expiresAt,
  });
  return {
    name,
    async authenticate(credential) {
      const verified = await verifier.verify(credential);
      return verified === undefined ? undefined : toResult(verified);
    },
    invalidateCredential: (credentialId) => verifier.invalidateCredential(credentialId),
    invalidateUser: (userId) => verifier.invalidateUser(userId),
  };
}

// ---------------------------------------------------------------------------------------
// Shared core (also used by ./django.js). Not exported from the package index.

/** @internal Claim names with defaults applied. */
export interface ResolvedClaimNames {
  readonly id: string;
  readonly username: readonly string[];
  readonly isStaff: string;
}

/** @internal */
export function resolveClaimNames(claims: JwtClaimNames): ResolvedClaimNames {
  const {
    id = 'sub',
    username = ['username', 'preferred_username'],
    isStaff = 'is_staff',
  } = claims;
  return {
    id,
    username: typeof username === 'string' ? [username] : [...username],
    isStaff,
  };
}

/** @internal A JWT that passed signature and claim checks. */
export interface VerifiedJwt {
  readonly payload: JWTPayload;
  /** The `jti`, or `jwt-` and a digest prefix when the token has none. */
  readonly credentialId: string;
  readonly expiresAt: Date;
  /** The user id claim, as a string. */
  readonly userId: string;
}

/** @internal How {@link createJwtVerifier} names things in its `TypeError`s, and what it requires. */
export interface JwtVerifierSettings {
  readonly label: string;
  readonly secretOption: string;
  readonly publicKeyOption: string;
  /** Claim that must hold a user id (string or integer); refused otherwise. */
  readonly userIdClaim: string;
  /** Claims required beside `exp` and the user id claim. */
  readonly requiredClaims?: readonly string[];
  /** Extra checks on the verified claims; throws {@link AuthenticationError} to refuse. */
  readonly validate?: (payload: JWTPayload) => void;
}

/** @internal */
export interface JwtVerifier {
  /** `undefined` when the credential is not JWT-shaped; throws when it is and is invalid. */
  verify(credential: string): Promise<VerifiedJwt | undefined>;
  invalidateCredential(credentialId: string): void;
  invalidateUser(userId: string): void;
}

/**
 * @internal Validates key and algorithm options once, then verifies tokens with jose,
 * caching successes by token digest.
 */
export function createJwtVerifier(
  options: JwtAuthenticatorOptions,
  settings: JwtVerifierSettings,
): JwtVerifier {
  const { label } = settings;
  const { issuer, audience, clockTolerance = 0, cache = {}, now = Date.now } = options;
  if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
    throw new RangeError(`${label}: "clockTolerance" must be a non-negative number of seconds`);
  }
  const { key, algorithms } = resolveKey(options, settings);
  const verifyOptions: JWTVerifyOptions = {
    algorithms: [...algorithms],
    requiredClaims: ['exp', settings.userIdClaim, ...(settings.requiredClaims ?? [])],
    clockTolerance,
  };
  if (issuer !== undefined)
    verifyOptions.issuer = typeof issuer === 'string' ? issuer : [...issuer];
  if (audience !== undefined) {
    verifyOptions.audience = typeof audience === 'string' ? audience : [...audience];
  }
  const verified =
    cache === false ? undefined : new VerificationCache<VerifiedJwt>({ ...cache, now });

  return {
    async verify(credential) {
      if (!isJwtShaped(credential)) return undefined;
      if (credential.length > MAX_JWT_LENGTH) throw invalid('token too large');
      const hit = verified?.get(credential);
      if (hit !== undefined) return hit;

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(credential, key, {
          ...verifyOptions,
          currentDate: new Date(now()),
        }));
      } catch (err) {
        throw toAuthenticationError(err);
      }
      const userId = claimAsId(payload[settings.userIdClaim]);
      if (userId === undefined) throw invalid(`token has no valid "${settings.userIdClaim}" claim`);
      settings.validate?.(payload);
      // `exp` is required and jose checked it is a number.
      const expiresAt = new Date((payload.exp ?? 0) * 1000);
      const credentialId =
        typeof payload.jti === 'string' && payload.jti !== ''
          ? payload.jti
          : `jwt-${credentialDigest(credential).slice(0, 16)}`;
      const result: VerifiedJwt = { payload, credentialId, expiresAt, userId };
      verified?.set(credential, result, { credentialId, userId, expiresAt });
      return result;
    },
    invalidateCredential(credentialId) {
      verified?.invalidateCredential(credentialId);
    },
    invalidateUser(userId) {
      verified?.invalidateUser(userId);
    },
  };
}

/**
 * @internal True when `credential` looks like a compact JWS: three base64url segments whose
 * header decodes to a JSON object with a string `alg`. The signature segment may be empty,
 * so that an `alg: none` token is recognised, and refused, rather than passed on.
 */
export function isJwtShaped(credential: string): boolean {
  const segments = credential.split('.');
  if (segments.length !== 3) return false;
  const [header = '', payload = '', signature] = segments;
  if (header === '' || payload === '' || !BASE64URL.test(header + payload + (signature ?? ''))) {
    return false;
  }
  try {
    return typeof decodeProtectedHeader(credential).alg === 'string';
  } catch {
    return false;
  }
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The claim SimpleJWT (and others) name the token's kind in: `access` or `refresh`. */
const TOKEN_TYPE_CLAIM = 'token_type';

/**
 * @internal The source of a JWT's user (SPEC §3 identity): each issuer is its own,
 * `jwt:<iss>`; a token without `iss` belongs to the plain `jwt` source.
 */
export function jwtSource(payload: JWTPayload): string {
  return typeof payload.iss === 'string' && payload.iss !== '' ? `jwt:${payload.iss}` : 'jwt';
}

/** @internal Maps verified claims to a {@link User} (SPEC §3). */
export function userFromClaims(
  payload: JWTPayload,
  names: ResolvedClaimNames,
  source: string = jwtSource(payload),
): User {
  const id = claimAsId(payload[names.id]);
  if (id === undefined) throw invalid(`token has no valid "${names.id}" claim`);
  let username = id;
  for (const claim of names.username) {
    const value = payload[claim];
    if (typeof value === 'string' && value !== '') {
      username = value;
      break;
    }
  }
  return Object.freeze({
    source,
    id,
    username,
    isStaff: payload[names.isStaff] === true,
    isAnonymous: false,
  });
}

/** @internal A user id claim as a string: a non-empty string or a safe integer, else `undefined`. */
export function claimAsId(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

/** @internal An `ERR_INVALID_CREDENTIALS` error; `reason` must never include the credential. */
export function invalid(reason: string, options?: ErrorOptions): AuthenticationError {
  return new AuthenticationError(
    'ERR_INVALID_CREDENTIALS',
    `invalid credentials: ${reason}`,
    options,
  );
}

/** @internal */
export function assertName(label: string, name: unknown): void {
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(`${label}: "name" must be a non-empty string`);
  }
}

function resolveKey(
  options: JwtAuthenticatorOptions,
  settings: JwtVerifierSettings,
): {
  key: Uint8Array | KeyObject | CryptoKey | JWK | JWTVerifyGetKey;
  algorithms: readonly string[];
} {
  const { label, secretOption, publicKeyOption } = settings;
  // Read loosely: JavaScript callers and casts can break the union type.
  const loose = options as {
    secret?: unknown;
    jwksUrl?: unknown;
    publicKey?: unknown;
    jwks?: JwksFetchOptions;
    algorithms?: unknown;
  };
  const given = [loose.secret, loose.jwksUrl, loose.publicKey].filter((v) => v !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `${label}: exactly one of "${secretOption}", "jwksUrl" or "${publicKeyOption}" is required`,
    );
  }

  if (loose.secret !== undefined) {
    const algorithms = checkAlgorithms(
      label,
      loose.algorithms,
      ['HS256'],
      HMAC_ALGORITHMS,
      () =>
        new TypeError(
          `${label}: "algorithms" for "${secretOption}" must be HMAC algorithms (HS256, HS384, HS512)`,
        ),
    );
    const { secret } = loose;
    let bytes: Uint8Array;
    if (typeof secret === 'string') bytes = new TextEncoder().encode(secret);
    else if (secret instanceof Uint8Array) bytes = secret;
    else throw new TypeError(`${label}: "${secretOption}" must be a string or a Uint8Array`);
    if (bytes.byteLength < MIN_SECRET_BYTES) {
      throw new RangeError(
        `${label}: "${secretOption}" must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`,
      );
    }
    return { key: bytes, algorithms };
  }

  const algorithms = checkAlgorithms(
    label,
    loose.algorithms,
    ['RS256', 'ES256', 'EdDSA'],
    ASYMMETRIC_ALGORITHMS,
    () =>
      new TypeError(
        `${label}: "algorithms" for "${publicKeyOption}" or "jwksUrl" must be asymmetric (RS*, PS*, ES*, EdDSA, Ed25519)`,
      ),
  );

  if (loose.jwksUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(loose.jwksUrl as string | URL);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new TypeError(`${label}: "jwksUrl" must be an absolute http: or https: URL`);
    }
    const { timeoutMs = 5_000, cacheMaxAgeMs = 600_000, cooldownMs = 30_000 } = loose.jwks ?? {};
    const remote = createRemoteJWKSet(url, {
      timeoutDuration: timeoutMs,
      cacheMaxAge: cacheMaxAgeMs,
      cooldownDuration: cooldownMs,
    });
    const getKey: JWTVerifyGetKey = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        // An unknown kid is the token's fault; anything else (refused connection, timeout,
        // not 200, not a JWKS) means we cannot tell, so fail closed (SPEC §5, 1013).
        if (
          err instanceof errors.JWKSNoMatchingKey ||
          err instanceof errors.JWKSMultipleMatchingKeys
        ) {
          throw err;
        }
        throw new ServiceUnavailableError('JWKS endpoint', { cause: err });
      }
    };
    return { key: getKey, algorithms };
  }

  return { key: publicKeyFrom(label, publicKeyOption, loose.publicKey), algorithms };
}

function checkAlgorithms(
  label: string,
  value: unknown,
  defaults: readonly string[],
  allowed: ReadonlySet<string>,
  misfit: () => TypeError,
): readonly string[] {
  if (value === undefined) return defaults;
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(`${label}: "algorithms" must be a non-empty array`);
  }
  for (const alg of value as unknown[]) {
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
      throw new TypeError(`${label}: "none" is never an accepted algorithm`);
    }
    if (typeof alg !== 'string' || (!HMAC_ALGORITHMS.has(alg) && !ASYMMETRIC_ALGORITHMS.has(alg))) {
      throw new TypeError(`${label}: unsupported algorithm ${JSON.stringify(alg)}`);
    }
    if (!allowed.has(alg)) throw misfit();
  }
  return [...(value as string[])];
}

function publicKeyFrom(label: string, option: string, value: unknown): KeyObject | CryptoKey | JWK {
  const notPublic = (): TypeError =>
    new TypeError(`${label}: "${option}" must be a public key (PEM, KeyObject, CryptoKey or JWK)`);
  if (typeof value === 'string') {
    try {
      // createPublicKey also takes a private key PEM and keeps only its public half.
      return createPublicKey(value);
    } catch {
      throw notPublic();
    }
  }
  if (value instanceof KeyObject) {
    if (value.type === 'public') return value;
    if (value.type === 'private') return createPublicKey(value);
    throw notPublic();
  }
  if (typeof CryptoKey !== 'undefined' && value instanceof CryptoKey) {
    if (value.type !== 'public') throw notPublic();
    return value;
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    const jwk = value as JWK;
    if (typeof jwk.kty !== 'string' || jwk.kty === 'oct' || jwk.d !== undefined) throw notPublic();
    return jwk;
  }
  throw notPublic();
}

function toAuthenticationError(err: unknown): AuthenticationError | ServiceUnavailableError {
  if (err instanceof ServiceUnavailableError || err instanceof AuthenticationError) return err;
  // jose's messages name claims, never values; ours below are fixed strings all the same.
  const options = { cause: err };
  if (err instanceof errors.JWTExpired) {
    return new AuthenticationError('ERR_TOKEN_EXPIRED', 'token expired', options);
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return invalid(`token has no "${err.claim}" claim`, options);
    switch (err.claim) {
      case 'nbf':
        return invalid('token not yet valid', options);
      case 'iss':
        return invalid('unexpected token issuer', options);
      case 'aud':
        return invalid('unexpected token audience', options);
      default:
        return invalid(`token "${err.claim}" claim is invalid`, options);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed)
    return invalid('token algorithm not allowed', options);
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return invalid('token signature verification failed', options);
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return invalid('no single key matches the token', options);
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported, and jose's TypeErrors for a key that does
  // not fit the token's algorithm: all are a bad token, not a server fault.
  return invalid('malformed or unverifiable token', options);
}
