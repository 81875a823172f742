/**
 * The authenticator contract: turns a credential string into a user.
 *
 * @module
 */
import type { CredentialTransport, User } from './user.js';

/** What an authenticator learned from a credential it recognised and accepted. */
export interface AuthResult {
  readonly user: User;
  /** Non-secret credential id, for revocation (see {@link AuthInfo.credentialId}). */
  readonly credentialId: string | null;
  /** Credential expiry, or `null` for none. */
  readonly expiresAt: Date | null;
}

/** What {@link Authenticator.peek} returns for a credential that is not its kind. */
export const DECLINED: unique symbol = Symbol('portcullis.auth.declined');

/** Context passed with each credential. */
export interface AuthContext {
  readonly transport: CredentialTransport;
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
   * Optional: what can be told from memory, synchronously: {@link DECLINED} for a
   * credential that is not this authenticator's (where `authenticate` would resolve
   * `undefined`), the result of a credential verified and cached before, or `undefined`
   * when only {@link authenticate} can tell. Throws as `authenticate` would for a
   * malformed credential. A handshake whose credential every authenticator can answer
   * this way is authenticated without a promise.
   */
  peek?(credential: string, context: AuthContext): AuthResult | typeof DECLINED | undefined;
  /** Forgets a cached verification of a revoked credential (by its `credentialId`). */
  invalidateCredential?(credentialId: string): void;
  /** Forgets every cached verification of a user's credentials. */
  invalidateUser?(userId: string): void;
}
