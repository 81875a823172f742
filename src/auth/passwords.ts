/**
 * Password hashing with scrypt (SPEC §4), from `node:crypto`, asynchronous so that a
 * hash runs on the libuv thread pool instead of blocking the event loop.
 *
 * Hashes are self-describing strings, `scrypt$N$r$p$salt$hash` (salt and hash in
 * base64url), so the cost can be raised later without invalidating stored hashes:
 * {@link verifyPassword} reads the parameters from the string and
 * {@link needsRehash} tells when to re-hash at the next successful login.
 *
 * @module
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt cost parameters. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. Memory used is about `128 × N × r` bytes. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelisation. */
  readonly p: number;
}

/**
 * OWASP's recommended scrypt cost (Password Storage Cheat Sheet): N = 2^17, r = 8,
 * p = 1. Each hash needs 128 MiB and about 0.3 s of one core, so a burst of logins is
 * bounded by the thread pool (4 threads by default, `UV_THREADPOOL_SIZE`) to 512 MiB.
 */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });

const ALGORITHM = 'scrypt';
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Upper bounds on parameters read back from a stored hash, so a corrupt row cannot ask for gigabytes. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

/** True when `params` are within the bounds {@link hashPassword} accepts. */
export function isValidScryptParams({ N, r, p }: ScryptParams): boolean {
  return (
    Number.isSafeInteger(N) &&
    N >= 2 &&
    N <= MAX_N &&
    (N & (N - 1)) === 0 &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    r <= MAX_R &&
    Number.isSafeInteger(p) &&
    p >= 1 &&
    p <= MAX_P
  );
}

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const { N, r, p } = params;
  const options: ScryptOptions = {
    N,
    r,
    p,
    // Node's default `maxmem` is 32 MiB, below what N = 2^17 needs. OpenSSL checks
    // 128·r·(N + p + 2) bytes (the V array plus the B blocks) against it, so allow exactly that.
    maxmem: 128 * r * (N + p + 2),
  };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, options, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/**
 * Hashes a password with a fresh random salt.
 *
 * @param params scrypt cost; the default is OWASP's recommendation. Tests may lower it.
 * @returns `scrypt$N$r$p$salt$hash`, safe to store as is.
 * @throws {RangeError} when `params` are out of range (N a power of two up to 2^20,
 *   r ≤ 32, p ≤ 16).
 *
 * @example
 * ```ts
 * const encoded = await hashPassword('correct horse battery staple');
 * await verifyPassword('correct horse battery staple', encoded); // true
 * ```
 */
export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  if (!isValidScryptParams(params)) {
    throw new RangeError(
      'scrypt params must have N a power of two in [2, 2^20], r in [1, 32] and p in [1, 16]',
    );
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return [
    ALGORITHM,
    params.N,
    params.r,
    params.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

interface DecodedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

const INTEGER = /^[1-9][0-9]{0,8}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function decode(encoded: string): DecodedHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6) return undefined;
  const [algorithm, n, r, p, salt, key] = parts as [string, string, string, string, string, string];
  if (algorithm !== ALGORITHM) return undefined;
  if (!INTEGER.test(n) || !INTEGER.test(r) || !INTEGER.test(p)) return undefined;
  if (!BASE64URL.test(salt) || !BASE64URL.test(key)) return undefined;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (!isValidScryptParams(params)) return undefined;
  const decoded = {
    params,
    salt: Buffer.from(salt, 'base64url'),
    key: Buffer.from(key, 'base64url'),
  };
  if (decoded.salt.length < 8 || decoded.key.length !== KEY_BYTES) return undefined;
  return decoded;
}

/**
 * Checks a password against a hash from {@link hashPassword}, comparing in constant time.
 *
 * @returns `false` for a wrong password and for a malformed or foreign hash string.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  return verifyPasswordOrDummy(password, encoded);
}

const DUMMY_SALT = Buffer.alloc(SALT_BYTES, 0x5a);

/**
 * Like {@link verifyPassword}, but when there is no usable hash (unknown user, user
 * without a password, corrupt row) it still runs scrypt at `params` and returns `false`,
 * so a response's timing does not reveal which usernames exist.
 *
 * @param params the cost new hashes are made with; the dummy must cost the same.
 *
 * @example
 * ```ts
 * const row = await findUser(username); // may be undefined
 * const ok = await verifyPasswordOrDummy(password, row?.passwordHash);
 * return ok && row ? row : null;
 * ```
 */
export async function verifyPasswordOrDummy(
  password: string,
  encoded: string | null | undefined,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<boolean> {
  const decoded = encoded == null ? undefined : decode(encoded);
  if (decoded === undefined) {
    const key = await derive(
      password,
      DUMMY_SALT,
      isValidScryptParams(params) ? params : DEFAULT_SCRYPT_PARAMS,
    );
    // Compare anyway so the work matches the real path; the result is discarded.
    timingSafeEqual(key, Buffer.alloc(KEY_BYTES));
    return false;
  }
  const key = await derive(password, decoded.salt, decoded.params);
  return timingSafeEqual(key, decoded.key);
}

/**
 * True when `encoded` was made with parameters other than `params` (or cannot be read),
 * meaning it should be re-hashed after the next successful login.
 */
export function needsRehash(
  encoded: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): boolean {
  const decoded = decode(encoded);
  if (decoded === undefined) return true;
  const current = decoded.params;
  return current.N !== params.N || current.r !== params.r || current.p !== params.p;
}
