/**
 * A channel layer that speaks `channels_redis`'s wire format (its `RedisChannelLayer`,
 * version 4), so Portcullis consumers and Django Channels consumers are members of the
 * same groups on the same Redis (SPEC §11): a Django `group_send("room-1", ...)` reaches
 * Portcullis sockets, and a Portcullis group send reaches Django consumers.
 *
 * The format, as channels_redis 4.0 writes and reads it:
 * - a message is msgpack (`use_bin_type`), preceded by 12 random bytes that keep equal
 *   messages distinct in a sorted set;
 * - a channel's queue is a sorted set at `PREFIX + name` scored by send time (seconds);
 *   a process-specific channel (`specific.<client>!<id>`) queues at its part up to the
 *   `!`, shared by every channel of that process, and the message names its channel in
 *   `__asgi_channel__` (one name for a send, the list of that queue's members for a
 *   group send);
 * - a send drops entries older than `expiry` first, refuses past `capacity` (a full
 *   channel: `ChannelFull` for a send, skipped for a group send) and sets the key to
 *   expire after `expiry` seconds;
 * - a group is a sorted set at `PREFIX:group:NAME` of channel names scored by when they
 *   joined; members older than `group_expiry` are dropped at the next group send, so this
 *   layer renews its own members' scores while they live;
 * - a receiver pops the oldest entry with `BZPOPMIN`.
 *
 * Not supported: `symmetric_encryption_keys` (a message that does not decode is logged
 * and dropped), several hosts (sharding) and Sentinel.
 *
 * `ioredis` and `@msgpack/msgpack` are loaded by {@link ChannelsRedisLayer.connect}, so an
 * app that never uses this layer never loads them.
 *
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ChannelFullError, InvalidChannelNameError, ServiceUnavailableError } from '../errors.js';
import { defaultLogger } from '../logging.js';
import { assertLayerMessage, assertValidName, Envelope, handOver } from './layer.js';
import type {
  AttachOptions,
  ChannelLayer,
  ChannelReceiver,
  GroupSendResult,
  LayerMessage,
} from './layer.js';

/** Options of {@link ChannelsRedisLayer}, named as `CHANNEL_LAYERS[...]["CONFIG"]` names them. */
export interface ChannelsRedisLayerOptions {
  /** `redis://` or `rediss://` URL of the one host in `hosts`. */
  readonly url: string;
  /**
   * `prefix`.
   * @default 'asgi'
   */
  readonly prefix?: string;
  /**
   * `expiry`: seconds a queued message waits before it is dropped.
   * @default 60
   */
  readonly expiry?: number;
  /**
   * `group_expiry`: seconds a group member lasts without renewal.
   * @default 86400
   */
  readonly groupExpiry?: number;
  /**
   * `capacity`: messages a channel's queue holds; past it a send throws
   * {@link ChannelFullError} and a group send skips that queue.
   * @default 100
   */
  readonly capacity?: number;
  readonly logger?: Logger;
}

/** Channels' rule for channel names: a group name, optionally `!` and a local part (< 100). */
const CHANNEL_NAME = /^[A-Za-z0-9\-_.]+(![A-Za-z0-9\-_.]*)?$/;
const MESSAGE_CHANNEL = '__asgi_channel__';
/** channels_redis puts 12 random bytes before each message. */
const RANDOM_PREFIX_BYTES = 12;
/** Seconds a `BZPOPMIN` blocks, so that new queue keys are polled soon. */
const RECEIVE_BLOCK_SECONDS = 1;
/** Entries taken per `ZPOPMIN` after a blocking pop returned one. */
const DRAIN_BATCH = 256;

/**
 * channels_redis's group send, for the queues of one host: each key gets its own message
 * (its members in `__asgi_channel__`) unless it holds `capacity` entries already.
 * KEYS: queue keys. ARGV: messages, capacities, now, expiry. Returns the keys skipped.
 */
const SEND_SCRIPT = `
local over = 0
local now = tonumber(ARGV[#ARGV - 1])
local expiry = tonumber(ARGV[#ARGV])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(now) - expiry)
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    over = over + 1
  end
end
return over
`;

function isChannelName(name: unknown): name is string {
  return typeof name === 'string' && name.length < 100 && CHANNEL_NAME.test(name);
}

function assertChannelName(name: unknown): asserts name is string {
  if (!isChannelName(name)) throw new InvalidChannelNameError('channel', String(name));
}

/** The queue a channel's messages wait in: up to and including `!` for a specific channel. */
function nonLocalName(channel: string): string {
  const bang = channel.indexOf('!');
  return bang < 0 ? channel : channel.slice(0, bang + 1);
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`The "${name}" option must be a positive integer`);
  }
}

/**
 * A {@link ChannelLayer} on channels_redis's keys and message format: consumers of this
 * process are specific channels of one client, all served by one receive loop.
 *
 * @example
 * ```ts
 * // settings.py: CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
 * //   "CONFIG": {"hosts": ["redis://127.0.0.1:6379"], "prefix": "asgi"}}}
 * const layer = await ChannelsRedisLayer.connect({ url: 'redis://127.0.0.1:6379', prefix: 'asgi' });
 * class Room extends JsonWebsocketConsumer {
 *   override async connect() { this.accept(); await this.groupAdd('room-1'); }
 *   onChatMessage(event: LayerMessage) { this.sendJson({ message: event['message'] }); }
 * }
 * ```
 * @throws {TypeError | RangeError} at construction for malformed options.
 */
export class ChannelsRedisLayer implements ChannelLayer {
  readonly prefix: string;
  /** The `client_prefix` of this process: the part between `.` and `!` of its channels. */
  readonly clientPrefix = randomUUID().replaceAll('-', '');
  readonly #url: string;
  readonly #expiry: number;
  readonly #groupExpiry: number;
  readonly #capacity: number;
  readonly #logger: Logger;
  readonly #receivers = new Map<string, ChannelReceiver>();
  /** Groups each local channel joined, to leave them on detach and renew them. */
  readonly #memberships = new Map<string, Set<string>>();
  /** Queue keys with local channels, polled by the receive loop. */
  readonly #queues = new Set<string>();
  readonly #waiters = new Map<string, ((message: LayerMessage) => void)[]>();
  #msgpack: typeof import('@msgpack/msgpack') | undefined;
  #commands: Redis | undefined;
  #blocking: Redis | undefined;
  #loop: Promise<void> | undefined;
  #renewal: NodeJS.Timeout | undefined;
  #closed = false;
  #undecodable = 0;

  constructor(options: ChannelsRedisLayerOptions) {
    const {
      url,
      prefix = 'asgi',
      expiry = 60,
      groupExpiry = 86_400,
      capacity = 100,
      logger = defaultLogger(),
    } = options;
    if (
      typeof url !== 'string' ||
      !URL.canParse(url) ||
      !/^rediss?:$/.test(new URL(url).protocol)
    ) {
      throw new TypeError('The "url" option must be a redis:// or rediss:// URL');
    }
    if (typeof prefix !== 'string' || !/^[\x21-\x7e]{1,100}$/.test(prefix)) {
      throw new TypeError(
        'The "prefix" option must be 1 to 100 printable characters without spaces',
      );
    }
    positiveInteger('expiry', expiry);
    positiveInteger('groupExpiry', groupExpiry);
    positiveInteger('capacity', capacity);
    this.#url = url;
    this.prefix = prefix;
    this.#expiry = expiry;
    this.#groupExpiry = groupExpiry;
    this.#capacity = capacity;
    this.#logger = logger;
  }

  /**
   * Connects and resolves once Redis answers.
   * @throws {ServiceUnavailableError} when Redis cannot be reached.
   */
  static async connect(options: ChannelsRedisLayerOptions): Promise<ChannelsRedisLayer> {
    const layer = new ChannelsRedisLayer(options);
    await layer.#connect();
    return layer;
  }

  async #connect(): Promise<void> {
    const { Redis: RedisClient } = await import('ioredis');
    this.#msgpack = await import('@msgpack/msgpack');
    const options = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
    };
    this.#commands = new RedisClient(this.#url, options);
    this.#blocking = new RedisClient(this.#url, options);
    for (const connection of [this.#commands, this.#blocking]) {
      connection.on('error', () => {}); // reported through failed commands
    }
    try {
      await Promise.all([this.#commands.connect(), this.#blocking.connect()]);
    } catch (error) {
      this.#commands.disconnect();
      this.#blocking.disconnect();
      throw new ServiceUnavailableError('redis', { cause: error });
    }
    // Renew this process's memberships well before group_expiry drops them.
    const every = Math.max(1, Math.min(this.#groupExpiry / 4, 3_600)) * 1_000;
    this.#renewal = setInterval(() => void this.#renewMemberships(), every);
    this.#renewal.unref();
  }

  get #redis(): Redis {
    if (this.#commands === undefined || this.#closed) {
      throw new ServiceUnavailableError('redis');
    }
    return this.#commands;
  }

  newChannel(prefix = 'specific'): string {
    assertValidName('channel', prefix);
    return `${prefix}.${this.clientPrefix}!${randomUUID().replaceAll('-', '')}`;
  }

  attach(channel: string, receiver: ChannelReceiver, _options?: AttachOptions): void {
    assertChannelName(channel);
    if (!channel.includes(`.${this.clientPrefix}!`)) {
      throw new TypeError(`Channel ${channel} is not a channel of this process (newChannel())`);
    }
    if (this.#receivers.has(channel)) {
      throw new TypeError(`Channel ${channel} already has a receiver`);
    }
    this.#receivers.set(channel, receiver);
    this.#listen(channel);
  }

  detach(channel: string, receiver?: ChannelReceiver): Promise<void> {
    if (receiver !== undefined && this.#receivers.get(channel) !== receiver) {
      return Promise.resolve();
    }
    this.#receivers.delete(channel);
    const groups = this.#memberships.get(channel);
    this.#memberships.delete(channel);
    if (groups === undefined || groups.size === 0 || this.#closed) return Promise.resolve();
    const pipeline = this.#redis.pipeline();
    for (const group of groups) pipeline.zrem(this.#groupKey(group), channel);
    // A membership that cannot be dropped now expires with group_expiry.
    return pipeline.exec().then(
      () => undefined,
      (error: unknown) =>
        this.#logger.warn({ err: error }, 'channels_redis: could not leave groups'),
    );
  }

  async send(channel: string, message: LayerMessage): Promise<void> {
    assertChannelName(channel);
    assertLayerMessage(message);
    if (MESSAGE_CHANNEL in message) throw new TypeError(`"${MESSAGE_CHANNEL}" is reserved`);
    const specific = channel.includes('!');
    const payload = specific ? { ...message, [MESSAGE_CHANNEL]: channel } : message;
    const over = await this.#deliver([this.#queueKey(channel)], [this.#serialize(payload)]);
    if (over > 0) throw new ChannelFullError(channel);
  }

  async receive(channel: string, signal?: AbortSignal): Promise<LayerMessage> {
    assertChannelName(channel);
    if (!channel.includes('!')) return this.#receiveGeneral(channel, signal);
    this.#listen(channel);
    return new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(channel) ?? [];
      const waiter = (message: LayerMessage): void => {
        signal?.removeEventListener('abort', abort);
        resolve(message);
      };
      const abort = (): void => {
        const left = (this.#waiters.get(channel) ?? []).filter((entry) => entry !== waiter);
        if (left.length === 0) this.#waiters.delete(channel);
        else this.#waiters.set(channel, left);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      waiters.push(waiter);
      this.#waiters.set(channel, waiters);
    });
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    assertValidName('group', group);
    assertChannelName(channel);
    let groups = this.#memberships.get(channel);
    if (this.#receivers.has(channel)) {
      if (groups === undefined) this.#memberships.set(channel, (groups = new Set()));
      groups.add(group);
    }
    const key = this.#groupKey(group);
    try {
      await this.#redis
        .multi()
        .zadd(key, this.#now(), channel)
        .expire(key, this.#groupExpiry)
        .exec();
    } catch (error) {
      groups?.delete(group);
      throw new ServiceUnavailableError('redis', { cause: error });
    }
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    assertValidName('group', group);
    assertChannelName(channel);
    this.#memberships.get(channel)?.delete(group);
    try {
      await this.#redis.zrem(this.#groupKey(group), channel);
    } catch (error) {
      throw new ServiceUnavailableError('redis', { cause: error });
    }
  }

  async groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    assertValidName('group', group);
    assertLayerMessage(message);
    if (MESSAGE_CHANNEL in message) throw new TypeError(`"${MESSAGE_CHANNEL}" is reserved`);
    const key = this.#groupKey(group);
    let members: string[];
    try {
      const replies = await this.#redis
        .pipeline()
        .zremrangebyscore(key, 0, String(Math.floor(this.#now()) - this.#groupExpiry))
        .zrange(key, '0', '-1')
        .exec();
      const [failed, range] = replies?.[1] ?? [null, []];
      if (failed) throw failed;
      members = Array.isArray(range) ? (range as string[]) : [];
    } catch (error) {
      throw new ServiceUnavailableError('redis', { cause: error });
    }
    // One message per queue, naming every member of the group that waits in it.
    const byQueue = new Map<string, string[]>();
    for (const member of members) {
      if (!isChannelName(member)) continue;
      const queue = this.#queueKey(member);
      const listed = byQueue.get(queue);
      if (listed === undefined) byQueue.set(queue, [member]);
      else listed.push(member);
    }
    if (byQueue.size === 0) return { delivered: 0, dropped: 0 };
    const keys = [...byQueue.keys()];
    const payloads = keys.map((queue) =>
      this.#serialize({ ...message, [MESSAGE_CHANNEL]: byQueue.get(queue)! }),
    );
    const over = await this.#deliver(keys, payloads);
    if (over > 0) {
      this.#logger.info(
        { group, over, queues: keys.length },
        'channels_redis: queues over capacity',
      );
    }
    return { delivered: members.length, dropped: over };
  }

  async ping(): Promise<void> {
    try {
      await this.#redis.ping();
    } catch (error) {
      throw new ServiceUnavailableError('redis', { cause: error });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const channels = [...this.#receivers.keys()];
    await Promise.all(channels.map((channel) => this.detach(channel)));
    this.#closed = true;
    clearInterval(this.#renewal);
    this.#blocking?.disconnect();
    await this.#loop?.catch(() => undefined);
    await this.#commands?.quit().catch(() => undefined);
  }

  #now(): number {
    return Date.now() / 1_000;
  }

  #groupKey(group: string): string {
    return `${this.prefix}:group:${group}`;
  }

  #queueKey(channel: string): string {
    return this.prefix + nonLocalName(channel);
  }

  #serialize(message: Record<string, unknown>): Buffer {
    if (this.#msgpack === undefined) throw new ServiceUnavailableError('redis');
    const packed = this.#msgpack.encode(message, { ignoreUndefined: true });
    return Buffer.concat([randomBytes(RANDOM_PREFIX_BYTES), packed]);
  }

  async #deliver(keys: readonly string[], payloads: readonly Buffer[]): Promise<number> {
    const capacities = keys.map(() => String(this.#capacity));
    try {
      const over = await this.#redis.eval(
        SEND_SCRIPT,
        keys.length,
        ...keys,
        ...payloads,
        ...capacities,
        String(this.#now()),
        String(this.#expiry),
      );
      return Number(over);
    } catch (error) {
      throw new ServiceUnavailableError('redis', { cause: error });
    }
  }

  /** Makes sure the receive loop polls `channel`'s queue. */
  #listen(channel: string): void {
    this.#queues.add(this.#queueKey(channel));
    this.#loop ??= this.#receiveLoop();
  }

  async #receiveLoop(): Promise<void> {
    while (!this.#closed) {
      const connection = this.#blocking;
      if (connection === undefined) return;
      try {
        const popped = await connection.bzpopminBuffer(...this.#queues, RECEIVE_BLOCK_SECONDS);
        if (popped === null) continue;
        const [key, member] = popped;
        this.#dispatch(member);
        // More may be waiting: take them without blocking, oldest first.
        const rest = await connection.zpopminBuffer(key, DRAIN_BATCH);
        for (let i = 0; i < rest.length; i += 2) this.#dispatch(rest[i]!);
      } catch (error) {
        if (this.#closed) return;
        this.#logger.warn({ err: error }, 'channels_redis: receive failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** Hands one queued message to the local channels it names. */
  #dispatch(member: Buffer): void {
    let decoded: unknown;
    try {
      decoded = this.#msgpack?.decode(member.subarray(RANDOM_PREFIX_BYTES));
    } catch {
      decoded = undefined;
    }
    if (
      typeof decoded !== 'object' ||
      decoded === null ||
      Array.isArray(decoded) ||
      typeof (decoded as { type?: unknown }).type !== 'string'
    ) {
      // Most likely symmetric_encryption_keys on the Django side: say so once in a while.
      if (this.#undecodable++ % 1_000 === 0) {
        this.#logger.warn(
          { count: this.#undecodable },
          'channels_redis: a message could not be decoded (is symmetric_encryption_keys set?); dropped',
        );
      }
      return;
    }
    const { [MESSAGE_CHANNEL]: target, ...rest } = decoded as Record<string, unknown>;
    const targets = typeof target === 'string' ? [target] : Array.isArray(target) ? target : [];
    const envelope = new Envelope(Object.freeze(rest) as LayerMessage);
    for (const channel of targets) {
      if (typeof channel !== 'string') continue;
      const receiver = this.#receivers.get(channel);
      if (receiver !== undefined) {
        handOver(receiver, envelope);
        continue;
      }
      const waiters = this.#waiters.get(channel);
      const waiter = waiters?.shift();
      if (waiters !== undefined && waiters.length === 0) this.#waiters.delete(channel);
      waiter?.(envelope.message);
    }
  }

  /** `receive` on a general channel (no `!`): its own blocking pop, as channels_redis does. */
  async #receiveGeneral(channel: string, signal?: AbortSignal): Promise<LayerMessage> {
    const key = this.#queueKey(channel);
    const connection = this.#redis.duplicate();
    connection.on('error', () => {});
    const abort = (): void => connection.disconnect();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await connection.connect();
      for (;;) {
        signal?.throwIfAborted();
        const popped = await connection.bzpopminBuffer(key, RECEIVE_BLOCK_SECONDS);
        if (popped === null) continue;
        const decoded: unknown = this.#msgpack?.decode(popped[1].subarray(RANDOM_PREFIX_BYTES));
        assertLayerMessage(decoded);
        return decoded;
      }
    } catch (error) {
      signal?.throwIfAborted();
      throw new ServiceUnavailableError('redis', { cause: error });
    } finally {
      signal?.removeEventListener('abort', abort);
      connection.disconnect();
    }
  }

  async #renewMemberships(): Promise<void> {
    if (this.#closed || this.#memberships.size === 0) return;
    const now = this.#now();
    const pipeline = this.#redis.pipeline();
    const groups = new Set<string>();
    for (const [channel, joined] of this.#memberships) {
      for (const group of joined) {
        pipeline.zadd(this.#groupKey(group), now, channel);
        groups.add(group);
      }
    }
    for (const group of groups) pipeline.expire(this.#groupKey(group), this.#groupExpiry);
    await pipeline.exec().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'channels_redis: could not renew group memberships');
    });
  }
}
