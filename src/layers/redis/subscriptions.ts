/**
 * This process's pub/sub subscriptions: its own process channel always, and one
 * channel per group with local members (taken with the first member, dropped with the
 * last). Classic (`SUBSCRIBE`/`PUBLISH`) or sharded (`SSUBSCRIBE`/`SPUBLISH`, Redis 7).
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { unavailable } from './lifecycle.js';
import type { RedisLifecycle } from './lifecycle.js';

/** @internal */
export interface SubscriptionsOptions {
  /** Where the subscriber connection is. */
  readonly redis: Pick<RedisLifecycle, 'sub'>;
  readonly sharded: boolean;
  readonly logger: Logger;
}

/** @internal */
export class Subscriptions {
  readonly #redis: Pick<RedisLifecycle, 'sub'>;
  readonly #sharded: boolean;
  readonly #logger: Logger;
  /** The channels this process must be subscribed to, whatever happened to the connection. */
  readonly #wanted = new Set<string>();
  readonly #subscribing = new Map<string, Promise<void>>();

  constructor(options: SubscriptionsOptions) {
    this.#redis = options.redis;
    this.#sharded = options.sharded;
    this.#logger = options.logger;
  }

  /** Routes every message of the subscriber connection to `onMessage`. */
  listen(sub: Redis, onMessage: (topic: string, payload: string) => void): void {
    sub.on(this.#sharded ? 'smessage' : 'message', onMessage);
  }

  /** Publishes on the command connection; resolves with how many subscribers got it. */
  publish(topic: string, payload: string, cmd: Redis): Promise<number> {
    return this.#sharded ? cmd.spublish(topic, payload).then(Number) : cmd.publish(topic, payload);
  }

  /** A topic to hold from the first connection on, without waiting (the process channel). */
  want(topic: string): void {
    this.#wanted.add(topic);
  }

  /**
   * Subscribes to `topic` unless already subscribed or under way. A failed attempt
   * stays wanted: {@link restore} subscribes it on the next recovery unless the caller
   * {@link release}s it.
   * @throws {ServiceUnavailableError} when Redis did not confirm.
   */
  ensure(topic: string): Promise<void> {
    if (this.#wanted.has(topic)) return this.#subscribing.get(topic) ?? Promise.resolve();
    this.#wanted.add(topic);
    const sub = this.#redis.sub!;
    const forget = (): void => {
      if (this.#subscribing.get(topic) === subscribing) this.#subscribing.delete(topic);
    };
    const subscribing = (this.#sharded ? sub.ssubscribe(topic) : sub.subscribe(topic)).then(
      forget,
      (err: unknown) => {
        forget();
        throw unavailable(err);
      },
    );
    this.#subscribing.set(topic, subscribing);
    return subscribing;
  }

  /** The subscription to `topic` still under way, if any. */
  pending(topic: string): Promise<void> | undefined {
    return this.#subscribing.get(topic);
  }

  /** Drops a topic; unsubscribes when the connection is up (a new one will not have it). */
  release(topic: string): void {
    this.#wanted.delete(topic);
    this.#subscribing.delete(topic);
    const sub = this.#redis.sub;
    if (sub?.status !== 'ready') return;
    const leaving = this.#sharded ? sub.sunsubscribe(topic) : sub.unsubscribe(topic);
    leaving.catch((err: unknown) => this.#logger.debug({ err, topic }, 'unsubscribe failed'));
  }

  /** Subscribes to everything wanted, after a (re)connect. */
  async restore(sub: Redis): Promise<void> {
    const topics = [...this.#wanted];
    if (topics.length === 0) return;
    if (this.#sharded) await Promise.all(topics.map((topic) => sub.ssubscribe(topic)));
    else await sub.subscribe(...topics);
  }

  clear(): void {
    this.#wanted.clear();
    this.#subscribing.clear();
  }
}
