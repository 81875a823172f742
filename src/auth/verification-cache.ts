/**
 * A small bounded cache of credential verifications, so that an expensive check (a JWT
 * signature, a JWKS lookup) runs once per credential rather than once per handshake.
 *
 * Entries are keyed by the SHA-256 digest of the credential: the cache never holds a
 * credential, so a heap dump or a debugger shows nothing that can be replayed.
 *
 * @module
 */
import { digestToken } from './tokens.js';

/** Options of {@link VerificationCache}. */
export interface VerificationCacheOptions {
  /**
   * Most entries kept; past it the least recently used entry is dropped.
   *
   * @default 10_000
   */
  readonly maxEntries?: number;
  /**
   * Longest time an entry is served, in milliseconds, even when its credential lives
   * longer. It bounds how long a change the cache cannot see (a key removed from a JWKS)
   * keeps being ignored; the default matches jose's own JWKS cache age, so a removed key
   * stops working after about the same time with or without this cache.
   *
   * @default 600_000 (10 minutes)
   */
  readonly maxTtlMs?: number;
  /**
   * Clock in milliseconds since the epoch. Tests pass a fake one.
   *
   * @default Date.now
   */
  readonly now?: () => number;
}

/** What {@link VerificationCache.set} records beside the cached value. */
export interface VerificationCacheMeta {
  /** Non-secret id of the credential, for {@link VerificationCache.invalidateCredential}. */
  readonly credentialId: string | null;
  /** The user the credential authenticates, for {@link VerificationCache.invalidateUser}. */
  readonly userId: string | null;
  /** When the credential stops being valid; the entry is never served at or after it. */
  readonly expiresAt: Date | null;
}

/** One cache entry, as a {@link VerificationCache.delete} predicate sees it. */
export interface CachedVerification<V> {
  readonly value: V;
  readonly credentialId: string | null;
  readonly userId: string | null;
  /** Milliseconds since the epoch after which the entry is no longer served. */
  readonly expiresAt: number;
}

/**
 * Hex SHA-256 digest of a credential: the cache key, and a safe basis for a credential id.
 *
 * @example
 * ```ts
 * credentialDigest('abc').slice(0, 16); // 'ba7816bf8f01cfea'
 * ```
 */
export const credentialDigest: (credential: string) => string = digestToken;

/**
 * A bounded, least-recently-used cache of verification results, keyed by credential
 * digest. An entry expires at the earlier of its credential's expiry and `maxTtlMs`.
 *
 * @example
 * ```ts
 * const cache = new VerificationCache<AuthResult>({ maxEntries: 1_000 });
 * cache.set(token, result, { credentialId: 'jti-1', userId: '42', expiresAt });
 * cache.get(token); // result, until expiresAt
 * cache.invalidateUser('42'); // 1
 * ```
 *
 * @throws {RangeError} at construction when `maxEntries` is not a positive integer or
 *   `maxTtlMs` is not a positive number.
 */
export class VerificationCache<V> {
  readonly #entries = new Map<string, CachedVerification<V>>();
  // Indexes so that a revocation evicts in time proportional to its own entries.
  readonly #byCredential = new Map<string, Set<string>>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #maxEntries: number;
  readonly #maxTtlMs: number;
  readonly #now: () => number;

  constructor(options: VerificationCacheOptions = {}) {
    const {
      maxEntries = 10_000,
      maxTtlMs = 600_000, // 10 min
      now = Date.now,
    } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError('VerificationCache: "maxEntries" must be a positive integer');
    }
    if (!(maxTtlMs > 0)) {
      throw new RangeError('VerificationCache: "maxTtlMs" must be a positive number');
    }
    this.#maxEntries = maxEntries;
    this.#maxTtlMs = maxTtlMs;
    this.#now = now;
  }

  /** Number of entries held, including expired ones not yet dropped. */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached value for `credential`, or `undefined` when absent or expired. */
  get(credential: string): V | undefined {
    return this.getByDigest(credentialDigest(credential));
  }

  /** {@link get} for a caller that already holds the credential's {@link credentialDigest}. */
  getByDigest(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#remove(key, entry);
      return undefined;
    }
    // Re-inserting moves the entry to the young end of the Map's insertion order.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Caches `value` for `credential` until the earlier of `meta.expiresAt` and `maxTtlMs`. */
  set(credential: string, value: V, meta: VerificationCacheMeta): void {
    this.setByDigest(credentialDigest(credential), value, meta);
  }

  /** {@link set} for a caller that already holds the credential's {@link credentialDigest}. */
  setByDigest(key: string, value: V, meta: VerificationCacheMeta): void {
    const now = this.#now();
    const expiresAt = Math.min(
      now + this.#maxTtlMs,
      meta.expiresAt === null ? Infinity : meta.expiresAt.getTime(),
    );
    if (!(expiresAt > now)) return;
    const previous = this.#entries.get(key);
    if (previous !== undefined) this.#remove(key, previous);
    const entry: CachedVerification<V> = {
      value,
      credentialId: meta.credentialId,
      userId: meta.userId,
      expiresAt,
    };
    this.#entries.set(key, entry);
    if (entry.credentialId !== null) addKey(this.#byCredential, entry.credentialId, key);
    if (entry.userId !== null) addKey(this.#byUser, entry.userId, key);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.entries().next();
      if (oldest.done === true) break;
      this.#remove(oldest.value[0], oldest.value[1]);
    }
  }

  #remove(key: string, entry: CachedVerification<V>): void {
    this.#entries.delete(key);
    if (entry.credentialId !== null) removeKey(this.#byCredential, entry.credentialId, key);
    if (entry.userId !== null) removeKey(this.#byUser, entry.userId, key);
  }

  #removeAll(keys: Set<string> | undefined): number {
    let dropped = 0;
    for (const key of [...(keys ?? [])]) {
      const entry = this.#entries.get(key);
      if (entry === undefined) continue;
      this.#remove(key, entry);
      dropped += 1;
    }
    return dropped;
  }

  /**
   * Drops every entry for which `where` returns true.
   *
   * @returns how many entries were dropped.
   */
  delete(where: (entry: CachedVerification<V>) => boolean): number {
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (where(entry)) {
        this.#remove(key, entry);
        dropped += 1;
      }
    }
    return dropped;
  }

  /** Drops the entries of one credential (its revocation). Returns how many. */
  invalidateCredential(credentialId: string): number {
    return this.#removeAll(this.#byCredential.get(credentialId));
  }

  /** Drops the entries of every credential of one user. Returns how many. */
  invalidateUser(userId: string): number {
    return this.#removeAll(this.#byUser.get(userId));
  }

  /** Drops every entry. */
  clear(): void {
    this.#entries.clear();
    this.#byCredential.clear();
    this.#byUser.clear();
  }
}

function addKey(index: Map<string, Set<string>>, id: string, key: string): void {
  let keys = index.get(id);
  if (keys === undefined) {
    keys = new Set();
    index.set(id, keys);
  }
  keys.add(key);
}

function removeKey(index: Map<string, Set<string>>, id: string, key: string): void {
  const keys = index.get(id);
  if (keys === undefined) return;
  keys.delete(key);
  if (keys.size === 0) index.delete(id);
}
