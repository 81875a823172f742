/**
 * Attempt limits per key (a client address, a user): failed WebSocket authentications
 * (4429), REST logins and tickets (429). {@link AddressWindowLimiter} counts in this
 * process; {@link RedisAttemptLimiter} counts in Redis so that every process of a
 * deployment shares one budget (SPEC §12: `--workers 4` gives an attacker what one
 * process would).
 *
 * @module
 */
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** Counts attempts per key in windows; what the auth middleware and REST throttles use. */
export interface AttemptLimiter {
  /** True while nothing can be over the limit: a caller may skip {@link retryAfter}. */
  readonly idle: boolean;
  /** Seconds to wait when `key` used up its window, else 0. Counts nothing. */
  retryAfter(key: string): number | Promise<number>;
  /** Counts one attempt. @returns seconds to wait when this one is over the limit, else 0. */
  hit(key: string): number | Promise<number>;
}

// Bounds memory under an address-spraying attack; the oldest windows are dropped first.
const MAX_TRACKED_ADDRESSES = 100_000;

/** Options of {@link AddressWindowLimiter}. */
export interface AddressWindowLimiterOptions {
  /** Events allowed per address per window; `0` switches the limit off. */
  readonly max: number;
  readonly windowMs: number;
  readonly now: () => number;
}

/** Counts events per address in fixed windows, in this process. */
export class AddressWindowLimiter implements AttemptLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, { count: number; resetAt: number }>();

  constructor(options: AddressWindowLimiterOptions) {
    this.#max = options.max;
    this.#windowMs = options.windowMs;
    this.#now = options.now;
  }

  #secondsLeft(resetAt: number, now: number): number {
    return Math.max(1, Math.ceil((resetAt - now) / 1000));
  }

  /** Counts one event. @returns seconds to wait when this event is over the limit, else 0. */
  hit(address: string): number {
    if (this.#max === 0) return 0;
    const now = this.#now();
    let window = this.#windows.get(address);
    if (window === undefined || now >= window.resetAt) {
      this.#windows.delete(address);
      if (this.#windows.size >= MAX_TRACKED_ADDRESSES) this.#sweep(now);
      window = { count: 0, resetAt: now + this.#windowMs };
      this.#windows.set(address, window);
    }
    window.count += 1;
    return window.count > this.#max ? this.#secondsLeft(window.resetAt, now) : 0;
  }

  /** True while no address has anything counted: nothing can be over the limit. */
  get idle(): boolean {
    return this.#max === 0 || this.#windows.size === 0;
  }

  /** @returns seconds to wait when the address has used up its window, else 0. Counts nothing. */
  retryAfter(address: string): number {
    if (this.#max === 0) return 0;
    const window = this.#windows.get(address);
    const now = this.#now();
    if (window === undefined || now >= window.resetAt) return 0;
    return window.count >= this.#max ? this.#secondsLeft(window.resetAt, now) : 0;
  }

  #sweep(now: number): void {
    for (const [address, window] of this.#windows) {
      if (now >= window.resetAt) this.#windows.delete(address);
    }
    for (const address of this.#windows.keys()) {
      if (this.#windows.size < MAX_TRACKED_ADDRESSES) break;
      this.#windows.delete(address);
    }
  }
}

/** Options of {@link RedisAttemptLimiter}. */
export interface RedisAttemptLimiterOptions {
  /** An ioredis client (or cluster) of the deployment's Redis. */
  readonly client: Redis | Cluster;
  /** Starts every key (the deployment's `REDIS_PREFIX` and what is limited). */
  readonly keyPrefix: string;
  /** Attempts allowed per key per window; `0` switches the limit off. */
  readonly max: number;
  readonly windowMs: number;
}

const secondsOf = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/**
 * Attempts counted in Redis with `rate-limiter-flexible` (an atomic increment with
 * expiry per key), so every process sharing the Redis shares the budget. While Redis
 * cannot answer, an in-process limiter of the same size counts instead: a limit never
 * lapses because of an outage.
 *
 * @example
 * ```ts
 * const failures = new RedisAttemptLimiter({ client, keyPrefix: 'myapp:auth-failures', max: 20, windowMs: 60_000 });
 * authMiddleware({ authenticators, failureLimiter: failures });
 * ```
 * @throws {RangeError} for a negative `max` or a `windowMs` under 1 s.
 */
export class RedisAttemptLimiter implements AttemptLimiter {
  readonly #limiter: RateLimiterRedis | undefined;
  readonly #max: number;

  constructor(options: RedisAttemptLimiterOptions) {
    const { client, keyPrefix, max, windowMs } = options;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError('RedisAttemptLimiter: "max" must be a non-negative integer');
    }
    if (!Number.isSafeInteger(windowMs) || windowMs < 1_000) {
      throw new RangeError('RedisAttemptLimiter: "windowMs" must be an integer of at least 1000');
    }
    this.#max = max;
    const duration = Math.ceil(windowMs / 1000);
    this.#limiter =
      max === 0
        ? undefined
        : new RateLimiterRedis({
            storeClient: client,
            keyPrefix,
            points: max,
            duration,
            insuranceLimiter: new RateLimiterMemory({ keyPrefix, points: max, duration }),
          });
  }

  get idle(): boolean {
    return this.#limiter === undefined;
  }

  async retryAfter(key: string): Promise<number> {
    const state = await this.#limiter?.get(key);
    if (state == null || state.consumedPoints < this.#max) return 0;
    return secondsOf(state.msBeforeNext);
  }

  async hit(key: string): Promise<number> {
    if (this.#limiter === undefined) return 0;
    try {
      await this.#limiter.consume(key);
      return 0;
    } catch (rejection) {
      // Over the limit: the library rejects with the key's state, not an Error.
      if (rejection instanceof RateLimiterRes) return secondsOf(rejection.msBeforeNext);
      throw rejection;
    }
  }
}
