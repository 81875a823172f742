/**
 * The gateway's rate limits (SPEC §12): failed authentications and logins per address,
 * tickets per user, counted in Redis when `REDIS_URL` is set so that every process of a
 * deployment shares one budget, in this process otherwise; and a message rate per
 * connection. `serve --bench` lifts the message rate (SPEC §9).
 *
 * @module
 */
import type { Cluster, Redis } from 'ioredis';
import { RedisAttemptLimiter } from '../auth/rate-limit.js';
import type { AttemptLimiter } from '../auth/rate-limit.js';
import type { GatewayConfig } from './config.js';

/** Failed WebSocket authentications per address per minute, then 4429. */
export const MAX_FAILURES = 20;
/** Login attempts per address per minute, then 429. */
export const MAX_LOGINS = 10;
/** Tickets per user per minute, then 429. */
export const MAX_TICKETS = 30;
/**
 * Frames per second a connection may send, with bursts: far above what a person types
 * in a chat, far below a flood (4429 `too many requests`).
 */
export const MESSAGE_RATE = Object.freeze({ perSecond: 20, burst: 60 });
const WINDOW_MS = 60_000;

/** The limiters of one gateway process. */
export interface GatewayLimits {
  /** Shared limiters (Redis); `undefined` counts in this process. */
  readonly failures: AttemptLimiter | undefined;
  readonly logins: AttemptLimiter | undefined;
  readonly tickets: AttemptLimiter | undefined;
  readonly messageRate: { readonly perSecond: number; readonly burst: number } | undefined;
}

/** The part of the Redis channel layer the limits count with. */
export interface LimitsRedis {
  /** The layer's command client: fails at once while Redis is away. */
  readonly client: Redis | Cluster | undefined;
  /** A name under the deployment's `REDIS_PREFIX`. */
  key(name: string): string;
}

/**
 * The gateway's limiters. With Redis (the channel layer's client) they count under
 * `<REDIS_PREFIX>:ratelimit:*`; while Redis is away each counts in this process
 * instead, and the gateway refuses new sockets anyway (1013).
 */
export function openLimits(
  config: Pick<GatewayConfig, 'bench'>,
  redis: LimitsRedis | undefined,
): GatewayLimits {
  const messageRate = config.bench ? undefined : MESSAGE_RATE;
  const client = redis?.client;
  if (redis === undefined || client === undefined) {
    return { failures: undefined, logins: undefined, tickets: undefined, messageRate };
  }
  const limiter = (name: string, max: number): RedisAttemptLimiter =>
    new RedisAttemptLimiter({
      client,
      keyPrefix: redis.key(`ratelimit:${name}`),
      max,
      windowMs: WINDOW_MS,
    });
  return {
    failures: limiter('auth-failures', MAX_FAILURES),
    logins: limiter('logins', MAX_LOGINS),
    tickets: limiter('tickets', config.bench ? 0 : MAX_TICKETS),
    messageRate,
  };
}
