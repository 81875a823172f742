/**
 * Revocations made outside a running gateway (the CLI, an admin job), announced to every
 * gateway that shares the deployment's Redis.
 *
 * @module
 */
import { pino } from 'pino';
import { broadcastCredentialRevoked, broadcastUserRevoked } from '../auth/revocation.js';
import type { GatewayConfig } from './config.js';
import { redisLocation } from './redis.js';

/** A revocation to announce to running gateways: one token, or every socket of a user. */
export type RevokedCredentials = { readonly tokenId: string } | { readonly userId: string };

/**
 * Tells every running gateway that shares `config.redisUrl` and `config.redisPrefix` about a revocation made
 * elsewhere (the CLI, an admin job): their sockets authenticated by the token, or all of
 * the user's sockets, close 4401 `token revoked`, and their verification caches forget it.
 * Revoke in the store first.
 *
 * Gateways without Redis cannot be reached from another process: they find the
 * revocation when they re-read their live sessions' tokens (every 5 s) and close the
 * sockets then; `POST /api/auth/logout`, which runs inside the gateway, closes them at once.
 *
 * @returns `true` when published, `false` when `redisUrl` is `null`.
 * @throws {ServiceUnavailableError} when Redis is unreachable.
 * @example
 * ```ts
 * if (await store.revokeToken(id)) await publishRevocation(config, { tokenId: id });
 * ```
 */
export async function publishRevocation(
  config: Pick<GatewayConfig, 'redisUrl' | 'redisPrefix' | 'redisCluster'>,
  revoked: RevokedCredentials,
): Promise<boolean> {
  const location = redisLocation(config);
  if (location === null) return false;
  const { RedisChannelLayer } = await import('../layers/redis/layer.js');
  // The layer's reconnect chatter would break the one-line contract; failures surface as errors.
  const layer = await RedisChannelLayer.connect({
    ...location,
    logger: pino({ level: 'silent' }),
  });
  try {
    if ('tokenId' in revoked) await broadcastCredentialRevoked(layer, revoked.tokenId);
    else await broadcastUserRevoked(layer, revoked.userId);
  } finally {
    await layer.close();
  }
  return true;
}
