/**
 * The user a connection or request is authenticated as.
 *
 * @module
 */

/** A user as REST handlers and sockets both see it. */
export interface User {
  /** Stable id: a database id as a decimal string, or a JWT `sub`. Empty for the anonymous user. */
  readonly id: string;
  readonly username: string;
  readonly isStaff: boolean;
  /** True only for {@link ANONYMOUS_USER}. */
  readonly isAnonymous: boolean;
}

/** The user of a connection that presented no credential. `scope.user` is never undefined. */
export const ANONYMOUS_USER: User = Object.freeze({
  id: '',
  username: '',
  isStaff: false,
  isAnonymous: true,
});

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
