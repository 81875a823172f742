/**
 * The pool of connections that wait in `BLPOP` for `receive()`: a blocking command
 * holds its connection, so each waiter gets one of its own. Idle ones are kept for the
 * next `receive()`, up to a few; more are opened on demand.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { ServiceUnavailableError } from '../../errors.js';
import type { RedisLifecycle } from './lifecycle.js';
import type { RedisClient } from './clients.js';

/** Idle `BLPOP` connections kept for the next `receive()`. */
const MAX_IDLE_BLOCKERS = 2;

/** @internal */
export class BlockerPool {
  readonly #redis: Pick<RedisLifecycle, 'newClient' | 'closed' | 'failure'>;
  readonly #name: string;
  readonly #logger: Logger;
  readonly #idle: RedisClient[] = [];
  readonly #all = new Set<RedisClient>();

  /** `name`: the connections' client name, for operators reading `CLIENT LIST`. */
  constructor(
    redis: Pick<RedisLifecycle, 'newClient' | 'closed' | 'failure'>,
    name: string,
    logger: Logger,
  ) {
    this.#redis = redis;
    this.#name = name;
    this.#logger = logger;
  }

  /** An idle connection, or a new one. @throws {ServiceUnavailableError} when Redis is unreachable. */
  async take(): Promise<RedisClient> {
    for (let idle = this.#idle.pop(); idle !== undefined; idle = this.#idle.pop()) {
      if (idle.status === 'ready') return idle;
      this.discard(idle);
    }
    // Disposable: a dropped blocking connection fails its receive() and is not revived.
    const client = this.#redis.newClient(this.#name);
    client.on('error', (err: Error) => this.#logger.debug({ err }, 'redis blpop connection error'));
    this.#all.add(client);
    try {
      await client.connect();
    } catch (err) {
      this.discard(client);
      throw this.#redis.failure(err);
    }
    if (this.#redis.closed) {
      this.discard(client);
      throw new ServiceUnavailableError('redis');
    }
    return client;
  }

  /** Back to the pool after a wait that ended normally. */
  release(client: RedisClient): void {
    if (this.#redis.closed || client.status !== 'ready' || this.#idle.length >= MAX_IDLE_BLOCKERS) {
      this.discard(client);
    } else this.#idle.push(client);
  }

  /** Closes a connection that failed or is not wanted. */
  discard(client: RedisClient): void {
    this.#all.delete(client);
    const index = this.#idle.indexOf(client);
    if (index !== -1) this.#idle.splice(index, 1);
    client.disconnect();
  }

  /** Closes every connection; their pending `BLPOP`s fail. */
  closeAll(): void {
    for (const client of [...this.#all]) this.discard(client);
  }
}
