/**
 * The authenticator contract: turns a credential string into a user.
 *
 * @module
 */
import type { LiveSession } from './sessions.js';
import type { CredentialTransport, User } from './user.js';

/** What an authenticator learned from a credential it recognised and accepted. */
export interface AuthResult {
  readonly user: User;
  /** Non-secret credential id, for revocation (see {@link AuthInfo.credentialId}). */
  readonly credentialId: string | null;
  /** Credential expiry, or `null` for none. */
  readonly expiresAt: Date | null;
}

/** Context passed with each credential. */
export interface AuthContext {
  readonly transport: CredentialTransport;
  /**
   * For `transport: 'cookie'`: the cookie's name, so that an authenticator can take only
   * its own cookie (a Django session id is read from `sessionid` and nowhere else).
   */
  readonly cookie?: string;
}

/**
 * Recognises and verifies one kind of credential. Authenticators are tried in order;
 * the first that recognises a credential decides (SPEC §3).
 *
 * - return `undefined`: not mine, try the next authenticator;
 * - return an {@link AuthResult}: accepted;
 * - throw {@link AuthenticationError}: recognised but invalid (never a fall-through to anonymous);
 * - throw {@link ServiceUnavailableError}: cannot tell right now, fail closed.
 */
export interface Authenticator {
  /** Short name recorded in `scope.auth.authenticator` and metrics labels. */
  readonly name: string;
  authenticate(credential: string, context: AuthContext): Promise<AuthResult | undefined>;
  /**
   * Optional: of these live sessions, which this authenticator accepted, the ones whose
   * credential no longer holds (revoked, deleted, user deactivated), asked in one batch
   * (a handful of queries per 10,000 sessions). The auth middleware's periodic re-check
   * closes them (4401 `token revoked`). Throws when it cannot tell.
   */
  recheck?(sessions: readonly LiveSession[]): Promise<Iterable<LiveSession>>;
  /** Forgets a cached verification of a revoked credential (by its `credentialId`). */
  invalidateCredential?(credentialId: string): void;
  /** Forgets every cached verification of a user's credentials. */
  invalidateUser?(userId: string): void;
}
