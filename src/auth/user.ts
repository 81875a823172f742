/**
 * The user a connection or request is authenticated as.
 *
 * @module
 */

/** A user as REST handlers and sockets both see it. */
export interface User {
  /**
   * Where the user comes from (SPEC §3 identity): {@link PORTCULLIS_SOURCE} for the
   * Portcullis store, `jwt` or `jwt:<iss>` for a JWT's issuer, `django` for a Django app,
   * an authenticator's own name otherwise. User 2 of one source is never user 2 of another:
   * compare users with {@link identityKey}, never by `id` alone. Empty for the anonymous user.
   */
  readonly source: string;
  /** Stable id within its source: a database id as a decimal string, or a JWT `sub`. Empty for the anonymous user. */
  readonly id: string;
  readonly username: string;
  readonly isStaff: boolean;
  /** True only for {@link ANONYMOUS_USER}. */
  readonly isAnonymous: boolean;
}

/** The user of a connection that presented no credential. `scope.user` is never undefined. */
export const ANONYMOUS_USER: User = Object.freeze({
  source: '',
  id: '',
  username: '',
  isStaff: false,
  isAnonymous: true,
});

/** The source of the Portcullis store's users (tokens, tickets, passwords). */
export const PORTCULLIS_SOURCE = 'portcullis';

/** A user named by identity alone: (source, id). */
export interface UserRef {
  readonly source: string;
  readonly id: string;
}

/**
 * One string per identity (SPEC §3): equal for two users exactly when both their source
 * and their id are equal. Use it to key presence, per-user limits and revocation.
 *
 * @example
 * ```ts
 * identityKey({ source: 'portcullis', id: '2' }); // 'portcullis:2'
 * identityKey({ source: 'jwt:https://id.example', id: '2' }); // 'jwt%3Ahttps%3A%2F%2Fid.example:2'
 * ```
 */
export function identityKey(user: UserRef): string {
  // The source is escaped, so the first ':' always ends it and no two pairs collide.
  return `${encodeURIComponent(user.source)}:${user.id}`;
}

/** Where a credential came from on the WebSocket handshake or in-band (SPEC §3). */
export type CredentialTransport =
  'header' | 'cookie' | 'ticket' | 'subprotocol' | 'first-message' | 'query' | 'in-band';

/** How `scope.user` was authenticated. `null` on anonymous connections. */
export interface AuthInfo {
  /** The transport that carried the credential. */
  readonly method: CredentialTransport;
  /** The authenticator that recognised it (`token`, `jwt`, `drf-token`, or a custom name). */
  readonly authenticator: string;
  /**
   * A non-secret id of the credential (a token's id, a JWT's `jti` or digest prefix),
   * used to close every socket it opened when it is revoked. `null` when unknown.
   */
  readonly credentialId: string | null;
  /** When the credential stops being valid; the connection closes 4401 then. */
  readonly expiresAt: Date | null;
}
