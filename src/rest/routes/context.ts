/**
 * What the REST routes share: the store, the authenticator chain and the revocation hooks,
 * checked once by the plugin.
 *
 * @internal
 * @module
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AccountStore, Accounts } from '../../auth/accounts.js';
import type { Authenticator } from '../../auth/authenticator.js';
import type { AttemptLimiter } from '../../auth/rate-limit.js';
import type { Store } from '../../store/store.js';

/** The part of a {@link Store} the REST plugin uses. A `Store` from `openStore` has it all. */
export type RestStore = AccountStore & Pick<Store, 'revokeToken' | 'revokeUserTokens'>;

/**
 * Closes live WebSockets when REST revokes credentials. Wire it to the WebSocket auth
 * middleware (`authMiddleware`), whose `revokeCredential` / `revokeUser` reach every
 * process sharing its channel layer.
 */
export interface RestRevoker {
  /** Closes every socket opened with this token (4401 `token revoked`). */
  credential(tokenId: string): Promise<void>;
  /** Closes every socket of this user (4401 `token revoked`). */
  user(userId: string): Promise<void>;
}

/** Login throttling, per client address. */
export interface ResolvedRateLimit {
  readonly max: number;
  readonly windowMs: number;
  /** Counts instead of an in-process window of `max` per `windowMs` (shared over Redis). */
  readonly limiter?: AttemptLimiter;
}

/** Everything the routes need, validated. */
export interface RouteContext {
  readonly store: RestStore;
  /** Passwords, tokens and tickets over {@link RouteContext.store}. */
  readonly accounts: Accounts;
  readonly authenticators: readonly Authenticator[];
  readonly revoke: RestRevoker | undefined;
  readonly loginRateLimit: ResolvedRateLimit;
  readonly ticketRateLimit: ResolvedRateLimit;
  readonly logger: FastifyBaseLogger | undefined;
  readonly now: () => number;
}
