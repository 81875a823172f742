/**
 * The Redis channel layer: many gateway processes sharing one Redis (SPEC §2, issue 5).
 *
 * Built for fan-out cost rather than per-connection cost, from parts that each keep one
 * concern: group fan-out (`fan-out.ts`: one `PUBLISH` per send, decoded once per
 * process), direct sends to a process (`direct.ts`), channel queues for receivers in
 * other processes or none (`queues.ts`, `blockers.ts`), the membership registry
 * (`membership.ts`), subscriptions (`subscriptions.ts`), and the connections with their
 * recovery (`lifecycle.ts`). `names.ts` lists every Redis name, for operators.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Cluster, Redis } from 'ioredis';
import { ServiceUnavailableError } from '../../errors.js';
import { assertLayerMessage, assertValidName, Envelope } from '../layer.js';
import type {
  AttachOptions,
  ChannelLayer,
  ChannelReceiver,
  GroupSendResult,
  LayerMessage,
} from '../layer.js';
import type { LayerStats } from '../memory.js';
import { DirectSends } from './direct.js';
import { FanOut } from './fan-out.js';
import type { RedisClient } from './clients.js';
import { RedisLifecycle } from './lifecycle.js';
import { Membership } from './membership.js';
import { LayerNames, ownerOf } from './names.js';
import {
  assertPositiveIntegers,
  assertPrefix,
  assertRedisUrl,
  assertStatusAndClock,
  loggerOrDefault,
} from './options.js';
import type { RedisConnectionOptions } from './options.js';
import { ChannelQueues } from './queues.js';
import type { ScriptedRedis } from './queues.js';
import { LocalReceivers } from './receivers.js';
import { loadLua } from './scripts.js';
import { Subscriptions } from './subscriptions.js';

/** Whether the layer can reach Redis; see {@link RedisChannelLayerOptions.onStatus}. */
export type RedisLayerStatus = 'ready' | 'down';

/** Options of {@link RedisChannelLayer}. */
export interface RedisChannelLayerOptions extends RedisConnectionOptions {
  /**
   * Messages a channel without a receiver may hold; a send beyond it throws
   * {@link ChannelFullError}, a group send skips that member and counts it in `dropped`.
   * @default 100
   */
  capacity?: number;
  /** How long a queued message lives, in ms. @default 60000 (1 minute) */
  expiry?: number;
  /**
   * How long a group membership lives without being renewed by another `groupAdd`, in
   * ms. `0`: forever. @default 86400000 (1 day)
   */
  groupExpiry?: number;
  /**
   * Use sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7.0+) so that on Redis Cluster a
   * group's messages travel only within the shard that owns its slot instead of being
   * broadcast to every node. Standalone Redis 7 supports it too; every process sharing a
   * prefix must use the same setting.
   * @default with `cluster`: true when the server has it (asked on the first connect);
   * otherwise false
   */
  sharded?: boolean;
  /**
   * Called when the layer loses Redis (`'down'`: a connection dropped, or the first
   * command that failed for want of Redis, such as a timeout) and when it is fully back
   * (`'ready'`: Redis answers, every subscription and membership restored). While down
   * every call that needs Redis fails at once. The gateway fails closed while down: it
   * refuses new sockets and closes live ones (1013), since revocations published during
   * the outage never reach this process.
   */
  onStatus?: (status: RedisLayerStatus) => void;
  /** The clock used for message and membership expiry, for tests. @default Date.now */
  now?: () => number;
}

/** Counters of a {@link RedisChannelLayer}, for metrics and tests. */
export interface RedisLayerStats extends LayerStats {
  /** Group sends and list pushes that Redis did not take (it was down or timed out). */
  publishFailures: number;
}

const NOT_CONNECTED =
  'RedisChannelLayer is not connected: use `await RedisChannelLayer.connect(options)` ' +
  'or `await layer.connect()` first';

/**
 * A {@link ChannelLayer} over Redis, for running many gateway processes. See the module
 * documentation for the design and `names.ts` for the Redis names it uses.
 *
 * `ioredis` is imported by {@link connect}, so apps that never use Redis never load it.
 * While Redis is away, every call that needs it rejects at once with
 * {@link ServiceUnavailableError} (nothing is queued), sends to channels attached in
 * this process keep working, and the layer reconnects with capped, jittered backoff and
 * restores its subscriptions and memberships when Redis returns.
 *
 * @example
 * ```ts
 * const layer = await RedisChannelLayer.connect({
 *   url: process.env.REDIS_URL,
 *   onStatus: (status) => logger.info({ status }, 'channel layer'),
 * });
 * const app = urlRouter([route('/ws/chat/', Chat.asApp({ layer }))]);
 * // on shutdown
 * await layer.close();
 * ```
 */
export class RedisChannelLayer implements ChannelLayer {
  /** Counters; `delivered` counts hand-overs to local receivers plus list pushes. */
  readonly stats: RedisLayerStats = { dropped: 0, delivered: 0, publishFailures: 0 };
  /** This process's id, embedded in every channel name from {@link newChannel}. */
  readonly processId = randomBytes(6).toString('hex');
  /** What every Redis name of this layer starts with (the `prefix` option). */
  readonly prefix: string;

  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #names: LayerNames;
  /** The command and subscriber connections, their status and reconnects. */
  readonly #redis: RedisLifecycle<ScriptedRedis>;
  readonly #receivers: LocalReceivers;
  readonly #subscriptions: Subscriptions;
  readonly #membership: Membership;
  readonly #queues: ChannelQueues;
  readonly #fanOut: FanOut;
  readonly #direct: DirectSends;
  #connecting: Promise<this> | undefined;
  #counter = 0;

  /**
   * Checks the options; opens nothing until {@link connect}.
   *
   * @throws {TypeError} when `url`, `cluster`, `prefix`, `sharded`, `onStatus` or `now`
   * is malformed.
   * @throws {RangeError} when a number is out of range.
   */
  constructor(options: RedisChannelLayerOptions = {}) {
    const {
      url = 'redis://127.0.0.1:6379',
      cluster = false,
      prefix = 'portcullis',
      capacity = 100,
      expiry = 60_000, // 1 min
      groupExpiry = 86_400_000, // 1 day, as Channels
      sharded,
      connectTimeout = 5_000, // 5 s
      commandTimeout = 1_500, // 1.5 s: a stalled Redis answers 503 within 2 s
      maxReconnectDelay = 2_000, // 2 s
      onStatus,
      logger,
      now = Date.now,
    } = options;
    assertRedisUrl(url, cluster);
    assertPrefix(prefix);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('The "capacity" option must be a positive integer');
    }
    assertPositiveIntegers({ expiry, connectTimeout, commandTimeout, maxReconnectDelay });
    if (!Number.isInteger(groupExpiry) || groupExpiry < 0) {
      throw new RangeError('The "groupExpiry" option must be a non-negative integer');
    }
    if (sharded !== undefined && typeof sharded !== 'boolean') {
      throw new TypeError('The "sharded" option must be a boolean');
    }
    assertStatusAndClock(onStatus, now);
    this.prefix = prefix;
    this.#logger = loggerOrDefault(logger);
    this.#now = now;
    this.#names = new LayerNames(prefix);
    const redis = new RedisLifecycle<ScriptedRedis>({
      url,
      cluster,
      connectTimeout,
      commandTimeout,
      maxReconnectDelay,
      onStatus,
      logger: this.#logger,
      label: 'redis channel layer',
      recover: (cmd, sub) => this.#recover(cmd, sub),
    });
    this.#redis = redis;
    const command = (): ScriptedRedis => this.#command();
    const names = this.#names;
    const stats = this.stats;
    const commandToSend = (): ScriptedRedis => {
      try {
        return this.#command();
      } catch (err) {
        if (err instanceof ServiceUnavailableError) stats.publishFailures += 1;
        throw err;
      }
    };
    const receivers = new LocalReceivers(stats);
    const subscriptions = new Subscriptions({
      redis,
      sharded: sharded ?? (cluster ? 'auto' : false),
      logger: this.#logger,
    });
    const membership = new Membership({ names, subscriptions, groupExpiry, now });
    // Parts report failed commands to the lifecycle (which fails closed on an outage).
    const fail = { failure: (err: unknown) => redis.failure(err) };
    const queues = new ChannelQueues({
      redis,
      command,
      names,
      capacity,
      expiry,
      now,
      stats,
      logger: this.#logger,
      blockerName: `portcullis-${this.processId}-blpop`,
      ownUnattached: (channel) => ownerOf(channel) === this.processId && !receivers.has(channel),
    });
    this.#receivers = receivers;
    this.#subscriptions = subscriptions;
    this.#membership = membership;
    this.#queues = queues;
    this.#fanOut = new FanOut({
      redis: fail,
      command: commandToSend,
      names,
      subscriptions,
      membership,
      queues,
      receivers,
      stats,
      logger: this.#logger,
    });
    this.#direct = new DirectSends({
      processId: this.processId,
      redis: fail,
      command: commandToSend,
      names,
      subscriptions,
      queues,
      receivers,
      stats,
      logger: this.#logger,
      onAddRequest: (group, channel) => this.#onAddRequest(group, channel),
      onDiscardRequest: (group, channel) => {
        membership.dropLocal(group, channel);
        membership.dropQueued(group, channel);
      },
    });
    subscriptions.want(names.processTopic(this.processId));
  }

  /**
   * Creates a layer and connects it. Resolves once Redis answered or the first attempt
   * failed: an unreachable Redis gives a layer whose calls reject with
   * {@link ServiceUnavailableError} until Redis is reachable, so a gateway can start,
   * report itself unready and recover without a restart.
   *
   * @example
   * ```ts
   * const layer = await RedisChannelLayer.connect({ url: 'redis://127.0.0.1:6379' });
   * ```
   * @throws {TypeError} for malformed options. @throws {RangeError} for out-of-range ones.
   */
  static async connect(options: RedisChannelLayerOptions = {}): Promise<RedisChannelLayer> {
    return new RedisChannelLayer(options).connect();
  }

  /**
   * Loads `ioredis` and opens the command and subscriber connections; see
   * {@link RedisChannelLayer.connect}. Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * const layer = new RedisChannelLayer({ prefix: 'myapp' });
   * await layer.connect();
   * ```
   */
  connect(): Promise<this> {
    this.#connecting ??= this.#open();
    return this.#connecting;
  }

  /** `'ready'` when both connections are up and subscribed, `'down'` otherwise. */
  get status(): RedisLayerStatus {
    return this.#redis.status;
  }

  /**
   * The layer's command connection (`Redis`, or `Cluster` with `cluster`), for other
   * Redis work of the same deployment, such as rate limits shared across processes.
   * It queues nothing while Redis is away (commands fail at once) and each command
   * times out after `commandTimeout`. Name keys with {@link key}. `undefined` before
   * {@link connect}; do not close it: {@link close} does.
   *
   * @example
   * ```ts
   * const hits = await layer.client!.incr(layer.key('limits:login:203.0.113.7'));
   * ```
   */
  get client(): Redis | Cluster | undefined {
    return this.#redis.cmd;
  }

  /**
   * `name` under this layer's prefix (`<prefix>:<name>`), for keys of the same
   * deployment kept beside the layer's. On a cluster, keys that one command or script
   * uses together need the same `{…}` hash tag in `name`.
   *
   * @example
   * ```ts
   * layer.key('limits:login'); // 'portcullis:limits:login'
   * ```
   */
  key(name: string): string {
    return `${this.prefix}:${name}`;
  }

  async #open(): Promise<this> {
    const push = await loadLua('push');
    const ownTopic = this.#names.processTopic(this.processId);
    await this.#redis.open({
      cmd: {
        connectionName: `portcullis-${this.processId}-cmd`,
        scripts: { portcullisPush: { lua: push, numberOfKeys: 1 } },
      },
      sub: {
        connectionName: `portcullis-${this.processId}-sub`,
        shardedSubscribers: this.#subscriptions.sharded !== false,
      },
      opened: (sub) => {
        this.#subscriptions.listen(sub, (topic, payload) => {
          if (topic === ownTopic) {
            this.#direct.receive(payload);
            return;
          }
          const group = this.#names.groupOfTopic(topic);
          if (group !== undefined) this.#fanOut.deliver(group, payload);
        });
      },
    });
    return this;
  }

  /**
   * After every (re)connect: subscribe to everything wanted, and re-register this
   * process's memberships in case Redis came back empty (restart without persistence).
   */
  async #recover(cmd: ScriptedRedis, sub: RedisClient): Promise<void> {
    await Promise.all([this.#subscriptions.restore(cmd, sub), this.#membership.reregister(cmd)]);
  }

  /** The command connection. @throws TypeError before connect(), ServiceUnavailableError after close(). */
  #command(): ScriptedRedis {
    return this.#redis.command(NOT_CONNECTED);
  }

  /**
   * A new channel name owned by this process: `<prefix>.<processId>.<n>`.
   *
   * @example
   * ```ts
   * const channel = layer.newChannel(); // 'specific.9f1c2a7b03de.1'
   * ```
   * @throws {InvalidChannelNameError} when `prefix` makes the name invalid.
   */
  newChannel(prefix = 'specific'): string {
    const name = `${prefix}.${this.processId}.${(++this.#counter).toString(36)}`;
    assertValidName('channel', name);
    return name;
  }

  /**
   * Hands every message for `channel` to `receiver`, without a Redis round trip for
   * sends from this process. Messages queued before the receiver arrived are handed
   * over too. {@link detach} stops it and leaves every group.
   *
   * @example
   * ```ts
   * const channel = layer.newChannel();
   * layer.attach(channel, (envelope) => socket.send(envelope.json));
   * socket.on('close', () => layer.detach(channel));
   * ```
   * @throws {TypeError} when the channel is not from this layer's {@link newChannel}
   * (other processes could not route to it) or already has a receiver.
   */
  attach(channel: string, receiver: ChannelReceiver, options: AttachOptions = {}): void {
    assertValidName('channel', channel);
    if (ownerOf(channel) !== this.processId) {
      throw new TypeError(
        `Channel ${channel} was not made by this layer's newChannel(); only those can be attached`,
      );
    }
    if (this.#receivers.has(channel)) {
      throw new TypeError(`Channel ${channel} already has a receiver`);
    }
    this.#receivers.add(channel, receiver, options.batches === true);
    const queued = this.#membership.takeQueued(channel);
    if (queued !== undefined) {
      for (const [group, joinedAt] of queued) this.#promote(group, channel, joinedAt);
    }
    if (this.#queues.takeMaybeQueued(channel)) {
      this.#queues.drain(channel, (message) => {
        if (this.#receivers.get(channel) === receiver) {
          this.#receivers.hand(receiver, new Envelope(message));
        }
      });
    }
  }

  /**
   * Stops handing `channel`'s messages to its receiver (only to `receiver`, when given)
   * and leaves every group; see {@link ChannelLayer.detach}.
   *
   * @example
   * ```ts
   * socket.on('close', () => void layer.detach(channel));
   * ```
   */
  detach(channel: string, receiver?: ChannelReceiver): void | Promise<void> {
    if (!this.#receivers.delete(channel, receiver)) return;
    const groups = this.#membership.dropChannel(channel);
    const cmd = this.#redis.usable;
    if (groups.length === 0 || cmd === undefined) return; // expiry cleans up
    return this.#membership.unregisterAll(cmd, groups, channel).then(
      () => undefined,
      (err: unknown) => {
        this.#redis.failure(err);
        this.#logger.warn({ err, channel }, 'could not leave groups on detach; they expire');
      },
    );
  }

  /** A queued member of this process got a receiver: group messages now come by pub/sub. */
  #promote(group: string, channel: string, joinedAt: number): void {
    this.#membership.addLocal(group, channel, joinedAt);
    this.#subscriptions
      .ensure(this.#names.groupTopic(group))
      .catch((err: unknown) =>
        this.#logger.warn({ err, group }, 'redis channel layer: could not subscribe'),
      );
    const cmd = this.#redis.usable;
    if (cmd === undefined) return; // #recover re-registers it
    this.#membership.unqueue(cmd, group, channel).catch((err: unknown) => {
      this.#redis.failure(err);
      this.#logger.debug({ err, group }, 'zrem failed');
    });
  }

  /** Another process asked to add one of this process's channels to a group. */
  #onAddRequest(group: string, channel: string): void {
    const joinedAt = this.#now();
    const attached = this.#receivers.has(channel);
    if (attached) this.#membership.addLocal(group, channel, joinedAt);
    else {
      this.#membership.addQueued(group, channel, joinedAt);
      this.#queues.markMaybeQueued(channel);
    }
    const join = async (): Promise<void> => {
      const cmd = this.#command();
      await Promise.all([
        this.#membership.register(cmd, group, channel, joinedAt, !attached),
        attached ? this.#subscriptions.ensure(this.#names.groupTopic(group)) : undefined,
      ]);
    };
    join().catch((err: unknown) => {
      this.#redis.failure(err);
      this.#logger.warn({ err, group }, 'redis channel layer: could not join a group');
    });
  }

  /**
   * Sends to one channel. To a channel attached in this process: handed over at once,
   * Redis or not. To another process's channel: one `PUBLISH` to that process. To a
   * channel without a receiver: pushed onto its list.
   *
   * @example
   * ```ts
   * await layer.send(channel, { type: 'chat.message', text: 'hi' });
   * ```
   * @throws {ChannelFullError} when the channel's list is at capacity.
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   * @throws {InvalidChannelNameError} for a bad name. @throws {TypeError} for a message without `type`.
   */
  async send(channel: string, message: LayerMessage): Promise<void> {
    assertValidName('channel', channel);
    assertLayerMessage(message);
    await this.#direct.send(channel, message);
  }

  /**
   * Waits for the next message on a channel without a receiver, with `BLPOP` on a
   * connection of its own (idle ones are reused), so a wait never holds up other calls.
   * Aborting settles at once; the connection finishes its current `BLPOP` (at most
   * 1 s) and puts back a message popped in that window, so an abort
   * never loses one.
   *
   * @example
   * ```ts
   * const message = await layer.receive('thumbnails', AbortSignal.timeout(30_000));
   * ```
   * @throws {TypeError} when the channel has a receiver attached.
   * @throws {ServiceUnavailableError} when Redis is unreachable or goes away meanwhile.
   * @throws the signal's reason when aborted.
   */
  receive(channel: string, signal?: AbortSignal): Promise<LayerMessage> {
    assertValidName('channel', channel);
    if (this.#receivers.has(channel)) {
      return Promise.reject(new TypeError(`Channel ${channel} has a receiver attached`));
    }
    return this.#queues.receive(channel, signal);
  }

  /**
   * Adds a channel to a group (or renews its membership). A channel attached here joins
   * this process's one subscription to the group; a channel without a receiver becomes
   * a queued member whose list group sends push onto; another process's channel is
   * handed to that process, which decides (it may take a moment to take effect).
   *
   * @example
   * ```ts
   * await layer.groupAdd('room-1', channel);
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable; nothing was joined.
   * @throws {InvalidChannelNameError} for a bad name.
   */
  async groupAdd(group: string, channel: string): Promise<void> {
    assertValidName('group', group);
    assertValidName('channel', channel);
    const cmd = this.#command();
    const joinedAt = this.#now();
    const owner = ownerOf(channel);
    const membership = this.#membership;
    if (owner === this.processId && this.#receivers.has(channel)) {
      const renewal = membership.isLocalMember(group, channel);
      membership.addLocal(group, channel, joinedAt);
      const results = await Promise.allSettled([
        membership.register(cmd, group, channel, joinedAt, false),
        this.#subscriptions.ensure(this.#names.groupTopic(group)),
      ]);
      const failed = results.find((result) => result.status === 'rejected');
      if (failed === undefined) return;
      if (!renewal && membership.isLocalMember(group, channel, joinedAt)) {
        membership.dropLocal(group, channel);
      }
      throw this.#redis.failure(failed.reason);
    }
    try {
      if (owner !== undefined && owner !== this.processId) {
        await membership.register(cmd, group, channel, joinedAt, false);
        if (await this.#direct.requestAdd(owner, group, channel)) return;
      }
      // Without a receiver (or whose process is gone): a queued member.
      await membership.register(cmd, group, channel, joinedAt, true);
      if (owner === this.processId) {
        membership.addQueued(group, channel, joinedAt);
        this.#queues.markMaybeQueued(channel);
      }
    } catch (err) {
      throw this.#redis.failure(err);
    }
  }

  /**
   * Removes a channel from a group. This process stops delivering to it at once, even
   * while Redis is away; the Redis membership then expires by itself.
   *
   * @example
   * ```ts
   * await layer.groupDiscard('room-1', channel);
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   * @throws {InvalidChannelNameError} for a bad name.
   */
  async groupDiscard(group: string, channel: string): Promise<void> {
    assertValidName('group', group);
    assertValidName('channel', channel);
    const cmd = this.#command();
    this.#membership.dropLocal(group, channel);
    this.#membership.dropQueued(group, channel);
    const owner = ownerOf(channel);
    try {
      await this.#membership.unregister(cmd, group, channel);
      if (owner !== undefined && owner !== this.processId) {
        await this.#direct.requestDiscard(owner, group, channel);
      }
    } catch (err) {
      throw this.#redis.failure(err);
    }
  }

  /**
   * Sends to every member of a group: one `PUBLISH` of the JSON (encoded once here) that
   * every process with members decodes once, plus a push onto the list of each queued
   * member (a full one is skipped and counted in `dropped`).
   *
   * @example
   * ```ts
   * const { delivered, dropped } = await layer.groupSend('room-1', { type: 'chat.message', text: 'hi' });
   * ```
   * @returns `delivered`: processes the publish reached plus list pushes; `dropped`:
   * queued members skipped because full (or because Redis failed mid-way).
   * @throws {ServiceUnavailableError} when Redis did not take the publish; nothing was sent.
   * @throws {InvalidChannelNameError} for a bad name. @throws {TypeError} for a message without `type`.
   */
  async groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    assertValidName('group', group);
    assertLayerMessage(message);
    return this.#fanOut.send(group, [JSON.stringify(message)]);
  }

  /**
   * Sends several messages to every member of a group, in order, with one `PUBLISH` of
   * them all: every process with members decodes the batch once and hands it to each
   * member in one visit (as one {@link EnvelopeBatch} to receivers attached with
   * `{ batches: true }`). Queued members get each message pushed onto their list.
   *
   * @example
   * ```ts
   * await layer.groupSendMany('room-1', [{ type: 'websocket.send', text: 'a' }, { type: 'websocket.send', text: 'b' }]);
   * ```
   * @returns the sums over the messages of what {@link groupSend} returns.
   * @throws {ServiceUnavailableError} when Redis did not take the publish; nothing was sent.
   * @throws {InvalidChannelNameError} for a bad name. @throws {TypeError} for a message
   * without `type` (checked for all before anything is sent).
   */
  async groupSendMany(group: string, messages: readonly LayerMessage[]): Promise<GroupSendResult> {
    assertValidName('group', group);
    for (const message of messages) assertLayerMessage(message);
    if (messages.length === 0) return { delivered: 0, dropped: 0 };
    return this.#fanOut.send(
      group,
      messages.map((message) => JSON.stringify(message)),
    );
  }

  /**
   * The group's members across every process (unexpired), from Redis.
   *
   * @example
   * ```ts
   * const channels = await layer.groupMembers('room-1');
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   */
  async groupMembers(group: string): Promise<string[]> {
    assertValidName('group', group);
    const cmd = this.#command();
    try {
      return await this.#membership.members(cmd, group, false);
    } catch (err) {
      throw this.#redis.failure(err);
    }
  }

  /**
   * Resolves when both connections are up and Redis answers `PING` (on a cluster: every
   * master that owns slots, and `cluster_state:ok`); for readiness. A failed ping turns
   * the layer `'down'` like any failed command.
   *
   * @example
   * ```ts
   * app.get('/readyz', async () => { await layer.ping(); return { ok: true }; });
   * ```
   * @throws {ServiceUnavailableError} otherwise; at once while the layer is down.
   */
  ping(): Promise<void> {
    return this.#redis.ping(NOT_CONNECTED);
  }

  /**
   * Closes every connection (pending `receive()` calls reject with
   * {@link ServiceUnavailableError}) and forgets local state. Idempotent.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void layer.close());
   * ```
   */
  async close(): Promise<void> {
    if (!this.#redis.markClosed()) return;
    this.#queues.close();
    await this.#redis.disconnect();
    this.#receivers.clear();
    this.#membership.clear();
    this.#subscriptions.clear();
  }
}
