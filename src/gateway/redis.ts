/**
 * The gateway's Redis: where it is (`REDIS_URL`, `REDIS_CLUSTER`) and its namespace
 * (`REDIS_PREFIX`), handed the same way to the channel layer, presence and the CLI's
 * revocations (SPEC §8, §12), and one view of whether the Redis parts can be used.
 *
 * @module
 */
import type { Logger } from 'pino';
import type { RedisStatus } from '../layers/redis/lifecycle.js';
import type { GatewayConfig } from './config.js';

/** The Redis settings of a deployment, as `RedisChannelLayer` and `RedisPresence` take them. */
export interface RedisLocation {
  readonly url: string;
  readonly prefix: string;
  readonly cluster: boolean;
}

/**
 * Where the deployment's Redis is and the prefix of all its names; `null` without
 * `REDIS_URL` (one process, in-process layer).
 *
 * @example
 * ```ts
 * const location = redisLocation(config);
 * if (location !== null) layer = await RedisChannelLayer.connect({ ...location, logger });
 * ```
 */
export function redisLocation(
  config: Pick<GatewayConfig, 'redisUrl' | 'redisPrefix' | 'redisCluster'>,
): RedisLocation | null {
  if (config.redisUrl === null) return null;
  return { url: config.redisUrl, prefix: config.redisPrefix, cluster: config.redisCluster };
}

/**
 * Whether every Redis-backed part of the gateway (channel layer, presence) is ready,
 * from their `onStatus` callbacks: the gateway fails closed from the first report of an
 * outage, with no polling delay.
 */
export class RedisHealth {
  readonly #statuses = new Map<string, RedisStatus>();
  readonly #listeners: ((ready: boolean) => void)[] = [];
  readonly #logger: Logger;
  #ready = true;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** True while no part is down (also with no Redis at all). */
  get ready(): boolean {
    return this.#ready;
  }

  /** The `onStatus` callback of one part. */
  track(part: string): (status: RedisStatus) => void {
    this.#statuses.set(part, 'ready');
    return (status) => {
      this.#statuses.set(part, status);
      const ready = [...this.#statuses.values()].every((value) => value === 'ready');
      if (ready === this.#ready) return;
      this.#ready = ready;
      if (!ready) this.#logger.warn({ part }, 'redis is down: failing closed until it returns');
      for (const listener of this.#listeners) listener(ready);
    };
  }

  /** Called with `false` when a part goes down and `true` once all are back. */
  onChange(listener: (ready: boolean) => void): void {
    this.#listeners.push(listener);
  }
}
