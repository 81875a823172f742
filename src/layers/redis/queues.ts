/**
 * Channel queues: a channel without a receiver (a background worker calling
 * `receive()`, or a socket's channel before it is attached) is a Redis list with a
 * capacity. Pushes go through one Lua script (`push.lua`) that drops expired items and
 * refuses a full list atomically; `receive()` waits with `BLPOP` on a pooled connection.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import type { RedisClient } from './clients.js';
import type { LayerMessage } from '../layer.js';
import { BlockerPool } from './blockers.js';
import type { RedisLifecycle } from './lifecycle.js';
import { decodeListItem } from './messages.js';
import type { LayerNames } from './names.js';
import type { RedisLayerStats } from './layer.js';

/** `push.lua`, defined through ioredis's `scripts` option (EVALSHA, EVAL on NOSCRIPT). */
interface PushScript {
  portcullisPush(
    key: string,
    now: number,
    capacity: number,
    ttl: number,
    item: string,
  ): Promise<number>;
}

/** The command connection with `push.lua` defined on it. */
export type ScriptedRedis = RedisClient & PushScript;

/** Longest a `BLPOP` blocks, in seconds: how long an aborted `receive()` keeps its connection busy. */
const BLOCK_SECONDS = 1;

/** @internal */
export interface ChannelQueuesOptions {
  readonly redis: RedisLifecycle<ScriptedRedis>;
  /** The command connection, or the error a call must fail with. */
  readonly command: () => ScriptedRedis;
  readonly names: LayerNames;
  readonly capacity: number;
  /** ms a queued message lives */
  readonly expiry: number;
  readonly now: () => number;
  readonly stats: RedisLayerStats;
  readonly logger: Logger;
  /** The client name of the `BLPOP` connections. */
  readonly blockerName: string;
  /**
   * Whether a channel is this process's and has no receiver: its list is drained when
   * one attaches.
   */
  readonly ownUnattached: (channel: string) => boolean;
}

/** @internal */
export class ChannelQueues {
  readonly #redis: RedisLifecycle<ScriptedRedis>;
  readonly #command: () => ScriptedRedis;
  readonly #names: LayerNames;
  readonly #capacity: number;
  readonly #expiry: number;
  readonly #now: () => number;
  readonly #stats: RedisLayerStats;
  readonly #logger: Logger;
  readonly #blockers: BlockerPool;
  readonly #ownUnattached: (channel: string) => boolean;
  /** This process's unattached channels whose lists may hold messages. */
  readonly #maybeQueued = new Set<string>();

  constructor(options: ChannelQueuesOptions) {
    this.#redis = options.redis;
    this.#command = options.command;
    this.#names = options.names;
    this.#capacity = options.capacity;
    this.#expiry = options.expiry;
    this.#now = options.now;
    this.#stats = options.stats;
    this.#logger = options.logger;
    this.#blockers = new BlockerPool(options.redis, options.blockerName, options.logger);
    this.#ownUnattached = options.ownUnattached;
  }

  /**
   * Pushes onto a channel's list; false (counted in `dropped`) when it is full.
   * @throws what Redis throws.
   */
  async push(channel: string, json: string): Promise<boolean> {
    const now = this.#now();
    const pushed = await this.#command().portcullisPush(
      this.#names.listKey(channel),
      now,
      this.#capacity,
      this.#expiry,
      `${now + this.#expiry} ${json}`,
    );
    if (this.#ownUnattached(channel)) this.#maybeQueued.add(channel);
    if (pushed === 1) {
      this.#stats.delivered += 1;
      return true;
    }
    this.#stats.dropped += 1;
    return false;
  }

  /**
   * Pushes messages onto a queued member's list in order; how many went in. A Redis
   * failure mid-way counts the rest as not pushed.
   */
  async pushAll(channel: string, jsons: readonly string[]): Promise<number> {
    let pushed = 0;
    for (const json of jsons) {
      try {
        if (await this.push(channel, json)) pushed += 1;
      } catch (err) {
        this.#redis.failure(err);
        this.#stats.publishFailures += 1;
        break;
      }
    }
    return pushed;
  }

  /** Notes that a channel of this process without a receiver may get messages on its list. */
  markMaybeQueued(channel: string): void {
    this.#maybeQueued.add(channel);
  }

  /** Whether a channel's list may hold messages (forgotten by asking). */
  takeMaybeQueued(channel: string): boolean {
    return this.#maybeQueued.delete(channel);
  }

  /**
   * Pops what a channel's list holds and hands each live message to `hand` (a receiver
   * just attached). Best effort: with Redis away the messages expire.
   */
  drain(channel: string, hand: (message: LayerMessage) => void): void {
    const cmd = this.#redis.usable;
    if (cmd === undefined) return;
    cmd
      .lpop(this.#names.listKey(channel), this.#capacity)
      .then((items) => {
        for (const item of items ?? []) {
          const message = decodeListItem(item, this.#now(), this.#logger);
          if (message !== undefined) hand(message);
        }
      })
      .catch((err: unknown) => {
        this.#redis.failure(err);
        this.#logger.debug({ err, channel }, 'drain failed');
      });
  }

  /**
   * Waits for the next message on a channel's list, with `BLPOP` on a pooled connection.
   * Aborting settles at once; the connection finishes its current `BLPOP` (at most
   * {@link BLOCK_SECONDS}) and puts back a message popped in that window, so an abort
   * never loses one.
   */
  receive(channel: string, signal?: AbortSignal): Promise<LayerMessage> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    try {
      this.#command();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<LayerMessage>((resolve, reject) => {
      let settled = false;
      const settle = (done: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        done();
      };
      const onAbort = (): void => settle(() => reject(signal!.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      const key = this.#names.listKey(channel);
      const wait = async (): Promise<void> => {
        const client = await this.#blockers.take();
        try {
          while (!settled) {
            // A finite block, rather than closing the connection on abort: closing could
            // drop a message Redis had just popped for this waiter.
            const reply = await client.blpop(key, BLOCK_SECONDS);
            if (reply === null) continue;
            if (settled) {
              await this.#command().lpush(key, reply[1]); // back at the head, where it was
              break;
            }
            const message = decodeListItem(reply[1], this.#now(), this.#logger);
            if (message !== undefined) settle(() => resolve(message));
          }
        } catch (err) {
          this.#blockers.discard(client);
          throw err;
        }
        this.#blockers.release(client);
      };
      wait().catch((err: unknown) => {
        if (settled && !this.#redis.closed) {
          this.#logger.warn({ err, channel }, 'redis channel layer: receive() failed after abort');
        }
        settle(() => reject(this.#redis.failure(err)));
      });
    });
  }

  /** Closes the `BLPOP` connections (pending `receive()` calls reject) and forgets state. */
  close(): void {
    this.#blockers.closeAll();
    this.#maybeQueued.clear();
  }
}
