/**
 * Revocation across processes. A revocation is one broadcast on a layer group every
 * auth middleware instance listens to; each process evicts its verification caches and
 * closes its own sockets of that credential or user (STYLE.md practice 12). Revocations
 * are rare and handshakes are not, so nothing is subscribed per connection.
 *
 * @module
 */
import type { ChannelLayer } from '../layers/layer.js';
import { PORTCULLIS_SOURCE } from './user.js';
import type { UserRef } from './user.js';

/** The group every auth middleware instance listens to for revocations. */
export const REVOCATION_BROADCAST_GROUP = 'portcullis.revocations';

/** The broadcast that closes sockets (4401 `token revoked`) and evicts cached verifications. */
export interface RevokedMessage {
  readonly type: 'auth.revoked';
  /** Revoke this credential (a token id, a JWT `jti`…). */
  readonly credentialId?: string;
  /** Revoke every credential of this user (with {@link RevokedMessage.source}). */
  readonly userId?: string;
  /** The user's source (SPEC §3 identity). Absent: the Portcullis store. */
  readonly source?: string;
  readonly [key: string]: unknown;
}

/**
 * Closes every socket authenticated by `credentialId` on every process sharing `layer`
 * (4401 `token revoked`) and evicts the credential from every verification cache. Call
 * it after marking the credential revoked in the store.
 *
 * @throws {ServiceUnavailableError} when the layer's backing service is down.
 */
export async function broadcastCredentialRevoked(
  layer: ChannelLayer,
  credentialId: string,
): Promise<void> {
  const message: RevokedMessage = { type: 'auth.revoked', credentialId };
  await layer.groupSend(REVOCATION_BROADCAST_GROUP, message);
}

/**
 * Closes every socket of a user on every process ("log out everywhere") and evicts the
 * user's cached verifications. A user is the pair (source, id) (SPEC §3): a bare id
 * names a user of the Portcullis store, never a JWT or Django user with the same id.
 *
 * @throws {ServiceUnavailableError} when the layer's backing service is down.
 */
export async function broadcastUserRevoked(
  layer: ChannelLayer,
  user: string | UserRef,
): Promise<void> {
  const { source, id } = typeof user === 'string' ? { source: PORTCULLIS_SOURCE, id: user } : user;
  const message: RevokedMessage = { type: 'auth.revoked', userId: id, source };
  await layer.groupSend(REVOCATION_BROADCAST_GROUP, message);
}
