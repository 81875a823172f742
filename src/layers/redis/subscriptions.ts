/**
 * This process's pub/sub subscriptions: its own process channel always, and one
 * channel per group with local members (taken with the first member, dropped with the
 * last). Classic (`SUBSCRIBE`/`PUBLISH`) or sharded (`SSUBSCRIBE`/`SPUBLISH`, Redis
 * 7.0+), where each group's messages stay on the cluster node that owns its slot.
 *
 * Who resubscribes after a reconnect: on one server, this class (ioredis's own
 * resubscription is off, since it knows only what was confirmed before the outage); on
 * a cluster, ioredis, which moves subscriptions between nodes as slots move, and this
 * class only retries what was never confirmed.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import type { RedisClient } from './clients.js';
import type { RedisLifecycle } from './lifecycle.js';

/** @internal */
export interface SubscriptionsOptions {
  readonly redis: Pick<RedisLifecycle, 'sub' | 'cluster' | 'failure'>;
  /** `'auto'`: sharded when the server has `SSUBSCRIBE`, found out on the first connect. */
  readonly sharded: boolean | 'auto';
  readonly logger: Logger;
}

/** @internal */
export class Subscriptions {
  readonly #redis: Pick<RedisLifecycle, 'sub' | 'cluster' | 'failure'>;
  readonly #logger: Logger;
  #sharded: boolean | undefined;
  /** The channels this process must be subscribed to, whatever happened to the connection. */
  readonly #wanted = new Set<string>();
  /** Wanted channels whose subscription no connection has confirmed yet. */
  readonly #unconfirmed = new Set<string>();
  readonly #subscribing = new Map<string, Promise<void>>();

  constructor(options: SubscriptionsOptions) {
    this.#redis = options.redis;
    this.#sharded = options.sharded === 'auto' ? undefined : options.sharded;
    this.#logger = options.logger;
  }

  /** Whether sharded pub/sub is in use; undefined until the first connect decided it. */
  get sharded(): boolean | undefined {
    return this.#sharded;
  }

  /** Routes every message of the subscriber connection to `onMessage`. */
  listen(sub: RedisClient, onMessage: (topic: string, payload: string) => void): void {
    // Both kinds when undecided: a channel's messages come as one kind only.
    if (this.#sharded !== true) sub.on('message', onMessage);
    if (this.#sharded !== false) sub.on('smessage', onMessage);
  }

  /** Publishes on the command connection; resolves with how many subscribers got it. */
  publish(topic: string, payload: string, cmd: RedisClient): Promise<number> {
    return this.#sharded === true
      ? cmd.spublish(topic, payload).then(Number)
      : cmd.publish(topic, payload);
  }

  /** A topic to hold from the first connection on, without waiting (the process channel). */
  want(topic: string): void {
    this.#wanted.add(topic);
    this.#unconfirmed.add(topic);
  }

  /**
   * Subscribes to `topic` unless already subscribed or under way. A failed attempt
   * stays wanted: {@link restore} subscribes it on the next recovery unless the caller
   * {@link release}s it.
   * @throws {ServiceUnavailableError} when Redis did not confirm.
   */
  ensure(topic: string): Promise<void> {
    if (this.#wanted.has(topic)) return this.#subscribing.get(topic) ?? Promise.resolve();
    this.want(topic);
    const sub = this.#redis.sub;
    if (sub === undefined || this.#sharded === undefined) return Promise.resolve();
    const forget = (): void => {
      if (this.#subscribing.get(topic) === subscribing) this.#subscribing.delete(topic);
    };
    const subscribing = (this.#sharded ? sub.ssubscribe(topic) : sub.subscribe(topic)).then(
      () => {
        forget();
        this.#unconfirmed.delete(topic);
      },
      (err: unknown) => {
        forget();
        throw this.#redis.failure(err);
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
    this.#unconfirmed.delete(topic);
    this.#subscribing.delete(topic);
    const sub = this.#redis.sub;
    if (sub?.status !== 'ready' || this.#sharded === undefined) return;
    const leaving = this.#sharded ? sub.sunsubscribe(topic) : sub.unsubscribe(topic);
    leaving.catch((err: unknown) => this.#logger.debug({ err, topic }, 'unsubscribe failed'));
  }

  /**
   * After a (re)connect: decides between sharded and classic pub/sub the first time,
   * then subscribes to everything wanted (one server) or to what was never confirmed
   * (a cluster, where ioredis restores the rest).
   */
  async restore(cmd: RedisClient, sub: RedisClient): Promise<void> {
    this.#sharded ??= await hasShardedPubSub(cmd);
    const topics = [...(this.#redis.cluster ? this.#unconfirmed : this.#wanted)];
    if (topics.length === 0) return;
    if (this.#sharded) await Promise.all(topics.map((topic) => sub.ssubscribe(topic)));
    else await sub.subscribe(...topics);
    for (const topic of topics) this.#unconfirmed.delete(topic);
  }

  clear(): void {
    this.#wanted.clear();
    this.#unconfirmed.clear();
    this.#subscribing.clear();
  }
}

/** Whether the server knows `SSUBSCRIBE` (Redis 7.0+): `COMMAND INFO` answers nil for unknown commands. */
async function hasShardedPubSub(cmd: RedisClient): Promise<boolean> {
  const [info] = (await cmd.call('COMMAND', 'INFO', 'SSUBSCRIBE')) as unknown[];
  return Array.isArray(info);
}
