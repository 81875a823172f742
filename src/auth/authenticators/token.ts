/**
 * Authenticators for Portcullis tokens (`pcu_…`) and tickets (`pct_…`), verified against
 * the store (SPEC §3, §4).
 *
 * @module
 */
import { AuthenticationError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { redeemStoredTicket, verifyStoredToken, withdrawnTokens } from '../accounts.js';
import type { TicketRows, TokenRows } from '../accounts.js';
import type { AuthContext, AuthResult, Authenticator } from '../authenticator.js';
import { looksLikeTicket, parseTicket } from '../tickets.js';
import { digestToken, looksLikePortcullisToken, parseToken } from '../tokens.js';
import type { LiveSession } from '../sessions.js';
import { VerificationCache } from '../verification-cache.js';

/**
 * The part of a {@link Store} the token authenticator uses; with `getTokens` (a `Store`
 * has it) it can also re-check live sessions.
 */
export type TokenVerifier = TokenRows & Partial<Pick<Store, 'onRevoke' | 'getTokens'>>;

/** Options of {@link tokenAuthenticator}. */
export interface TokenAuthenticatorOptions {
  /**
   * Where token rows are read. When it also has `onRevoke` (a `Store` does), revocations
   * made through it evict the cache at once, without anyone calling
   * {@link TokenAuthenticator.invalidate}.
   */
  readonly store: TokenVerifier;
  /**
   * How long a verified token is trusted without asking the database again, so that a
   * reconnect storm costs one query per token rather than one per handshake. An entry
   * never outlives its token's expiry. `0` turns the cache off.
   *
   * Revocations in this process evict at once; revocations in other processes must be
   * relayed to {@link TokenAuthenticator.invalidateCredential} (the auth middleware does
   * through the channel layer), or they
   * take effect here within this time.
   * @default 5_000 (5 s)
   */
  readonly cacheTtlMs?: number;
  /**
   * At most this many tokens are cached; the least recently used is dropped first.
   * @default 10_000
   */
  readonly maxCacheEntries?: number;
  /** The clock, in milliseconds since the epoch. @default Date.now */
  readonly now?: () => number;
}

/** A token {@link Authenticator} with a verification cache that can be evicted. */
export interface TokenAuthenticator extends Authenticator {
  readonly name: 'token';
  /**
   * Forgets a token at once (it was revoked): `credentialId` is the token id. The auth
   * middleware calls it when a revocation arrives from any process. Verifications in
   * flight are not cached.
   */
  invalidateCredential(credentialId: string): void;
  /** The same as {@link TokenAuthenticator.invalidateCredential}. */
  invalidate(tokenId: string): void;
  /** Forgets every token of a user at once (logout everywhere, deactivation). */
  invalidateUser(userId: string): void;
  /**
   * Of these live sessions, those whose token was revoked or whose user was deactivated
   * since (one query per 1,000 tokens), evicted from the cache too. Needs `store.getTokens`.
   */
  recheck(sessions: readonly LiveSession[]): Promise<LiveSession[]>;
  /**
   * Stops listening to the store's revocations and empties the cache; later calls still
   * work, each asking the store.
   */
  close(): void;
}

/**
 * The sessions whose token id (`credentialId`) no longer authenticates, read from the
 * store in batches.
 */
async function sessionsWithWithdrawnTokens(
  store: Partial<Pick<Store, 'getTokens'>>,
  sessions: readonly LiveSession[],
): Promise<LiveSession[]> {
  if (store.getTokens === undefined) return [];
  const ids = new Set<string>();
  for (const { auth } of sessions) if (auth.credentialId !== null) ids.add(auth.credentialId);
  const withdrawn = await withdrawnTokens(store as Pick<Store, 'getTokens'>, ids);
  return sessions.filter(
    ({ auth }) => auth.credentialId !== null && withdrawn.has(auth.credentialId),
  );
}

const invalidCredentials = (): AuthenticationError =>
  new AuthenticationError('ERR_INVALID_CREDENTIALS');

/**
 * Authenticates Portcullis API tokens. It recognises only `pcu_` strings (anything else
 * is left to the next authenticator); a token with a bad checksum fails without a
 * database query; `credentialId` is the token's id, so revoking it closes its sockets.
 *
 * @throws {TypeError} when `store` has no `findTokenByDigest`.
 * @throws {RangeError} when `cacheTtlMs` or `maxCacheEntries` is not a non-negative /
 *   positive integer.
 *
 * @example
 * ```ts
 * const store = openStore('sqlite:./portcullis.db');
 * const tokens = tokenAuthenticator({ store });
 * const result = await tokens.authenticate('pcu_…', { transport: 'header' });
 * // result?.user.username, result?.credentialId (the token id), result?.expiresAt
 * ```
 */
export function tokenAuthenticator(options: TokenAuthenticatorOptions): TokenAuthenticator {
  const {
    store,
    cacheTtlMs = 5_000, // 5 s
    maxCacheEntries = 10_000,
    now = Date.now,
  } = options;
  if (typeof store?.findTokenByDigest !== 'function') {
    throw new TypeError('tokenAuthenticator: options.store must be a Store (findTokenByDigest)');
  }
  if (!Number.isSafeInteger(cacheTtlMs) || cacheTtlMs < 0) {
    throw new RangeError('tokenAuthenticator: options.cacheTtlMs must be a non-negative integer');
  }
  if (!Number.isSafeInteger(maxCacheEntries) || maxCacheEntries < 1) {
    throw new RangeError('tokenAuthenticator: options.maxCacheEntries must be a positive integer');
  }

  // `cacheTtlMs` bounds every entry: the shared cache's maximum age is exactly it.
  const cache =
    cacheTtlMs > 0
      ? new VerificationCache<AuthResult>({
          maxEntries: maxCacheEntries,
          maxTtlMs: cacheTtlMs,
          now,
        })
      : undefined;
  /** One database verification per digest at a time; concurrent handshakes share it. */
  const inflight = new Map<string, Promise<AuthResult>>();
  /** Bumped by every invalidation, so a verification that raced one is not cached. */
  let generation = 0;
  let closed = false;

  async function verify(token: string, digest: string): Promise<AuthResult> {
    const startedAt = generation;
    try {
      const verified = await verifyStoredToken(store, token, now);
      const result: AuthResult = {
        user: verified.user,
        credentialId: verified.tokenId,
        expiresAt: verified.expiresAt,
      };
      if (!closed && startedAt === generation) {
        cache?.setByDigest(digest, result, {
          credentialId: verified.tokenId,
          userId: verified.user.id,
          expiresAt: verified.expiresAt,
        });
      }
      return result;
    } finally {
      inflight.delete(digest);
    }
  }

  function invalidate(tokenId: string): void {
    generation++;
    cache?.invalidateCredential(tokenId);
  }

  function invalidateUser(userId: string): void {
    generation++;
    cache?.invalidateUser(userId);
  }

  const unsubscribe = store.onRevoke?.((event) => {
    for (const tokenId of event.tokenIds) invalidate(tokenId);
  });

  return {
    name: 'token',

    async authenticate(credential: string, _context: AuthContext): Promise<AuthResult | undefined> {
      if (!looksLikePortcullisToken(credential)) return undefined;
      // Recognised: from here on, failure is an error and never a fall-through (SPEC §3).
      if (parseToken(credential) === undefined) throw invalidCredentials();
      const digest = digestToken(credential);
      const cached = cache?.getByDigest(digest);
      if (cached !== undefined) return cached;
      let pending = inflight.get(digest);
      if (pending === undefined) {
        pending = verify(credential, digest);
        inflight.set(digest, pending);
      }
      return pending;
    },

    invalidateCredential: invalidate,
    invalidate,
    invalidateUser,

    async recheck(sessions) {
      const refused = await sessionsWithWithdrawnTokens(store, sessions);
      for (const { auth } of refused) invalidate(auth.credentialId!);
      return refused;
    },

    close(): void {
      closed = true;
      unsubscribe?.();
      generation++;
      cache?.clear();
    },
  };
}

/** The part of a {@link Store} the ticket authenticator uses. */
export type TicketRedeemer = TicketRows;

/** Options of {@link ticketAuthenticator}. */
export interface TicketAuthenticatorOptions {
  readonly store: TicketRedeemer;
  /** The clock, in milliseconds since the epoch. @default Date.now */
  readonly now?: () => number;
}

/**
 * Authenticates single-use tickets from `POST /api/auth/ticket` (SPEC §3). It recognises
 * only `pct_` strings and redeems the ticket, so a replay fails. The connection is
 * attributed to the token that asked for the ticket: `credentialId` is that token's id
 * (revoking it closes the ticket's sockets) and `expiresAt` its expiry.
 *
 * @throws {TypeError} when `store` has no `consumeTicketDigest`.
 *
 * @example
 * ```ts
 * const authenticators = [ticketAuthenticator({ store }), tokenAuthenticator({ store })];
 * ```
 */
export function ticketAuthenticator(options: TicketAuthenticatorOptions): Authenticator {
  const { store, now = Date.now } = options;
  if (typeof store?.consumeTicketDigest !== 'function') {
    throw new TypeError('ticketAuthenticator: options.store must be a Store (consumeTicketDigest)');
  }
  return {
    name: 'ticket',
    // A ticket's session holds the token that asked for it.
    recheck: (sessions) => sessionsWithWithdrawnTokens(store, sessions),

    async authenticate(credential: string, _context: AuthContext): Promise<AuthResult | undefined> {
      if (!looksLikeTicket(credential)) return undefined;
      if (parseTicket(credential) === undefined) throw invalidCredentials();
      const redeemed = await redeemStoredTicket(store, credential, now);
      return {
        user: redeemed.user,
        credentialId: redeemed.tokenId,
        expiresAt: redeemed.expiresAt,
      };
    },
  };
}
