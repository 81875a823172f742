/**
 * Revocation across processes: every authenticated socket joins a layer group named
 * after its credential and one named after its user, so that one group send closes
 * them on every process (STYLE.md practice 12, Phoenix's socket `id`).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { ChannelLayer } from '../layers/layer.js';

/** Every auth middleware instance listens here to evict its verification caches. */
export const REVOCATION_BROADCAST_GROUP = 'portcullis.revocations';

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 40);
}

/** The group of every socket opened with a credential. Hashed: ids may hold any character. */
export function credentialGroup(credentialId: string): string {
  return `portcullis.cred.${digest(credentialId)}`;
}

/** The group of every socket of a user. */
export function userGroup(userId: string): string {
  return `portcullis.user.${digest(userId)}`;
}

/** The layer message that closes a socket 4401 `token revoked`. */
export interface RevokedMessage {
  readonly type: 'auth.revoked';
  readonly [key: string]: unknown;
}

/** The broadcast that evicts cached verifications on every process. */
export interface InvalidateMessage {
  readonly type: 'auth.invalidate';
  readonly credentialId?: string;
  readonly userId?: string;
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
  const invalidate: InvalidateMessage = { type: 'auth.invalidate', credentialId };
  await layer.groupSend(REVOCATION_BROADCAST_GROUP, invalidate);
  const revoked: RevokedMessage = { type: 'auth.revoked' };
  await layer.groupSend(credentialGroup(credentialId), revoked);
}

/**
 * Closes every socket of a user on every process ("log out everywhere") and evicts the
 * user's cached verifications.
 *
 * @throws {ServiceUnavailableError} when the layer's backing service is down.
 */
export async function broadcastUserRevoked(layer: ChannelLayer, userId: string): Promise<void> {
  const invalidate: InvalidateMessage = { type: 'auth.invalidate', userId };
  await layer.groupSend(REVOCATION_BROADCAST_GROUP, invalidate);
  const revoked: RevokedMessage = { type: 'auth.revoked' };
  await layer.groupSend(userGroup(userId), revoked);
}
