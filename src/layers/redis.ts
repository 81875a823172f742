/**
 * The Redis channel layer: many gateway processes sharing one Redis (SPEC §2, issue 5).
 *
 * Built for fan-out cost rather than per-connection cost:
 *
 * - A group send is one `PUBLISH` of JSON encoded once, and a batch
 *   ({@link RedisChannelLayer.groupSendMany}) one `PUBLISH` of them all. Each process
 *   holds one subscription per group that has local members (taken on the first local
 *   member, dropped with the last), decodes each payload once and hands the same
 *   {@link Envelope} (or {@link EnvelopeBatch}) to every local member.
 * - A channel made by {@link RedisChannelLayer.newChannel} carries its process id
 *   (`specific.<processId>.<n>`), so a direct send goes straight to the owning process
 *   over that process's own pub/sub channel. No Redis state is written per attached
 *   socket apart from its group memberships.
 * - Channels without a receiver (background workers calling `receive()`) are Redis
 *   lists with a capacity, filled by an atomic Lua script and read with `BLPOP`.
 *
 * Redis names, for operators (`P` is the `prefix` option, `portcullis` by default):
 *
 * | name | type | holds |
 * |---|---|---|
 * | `P:group:{G}` | sorted set | every member channel of group `G`, scored by join time (ms) |
 * | `P:group:{G}:queued` | sorted set | the members without a receiver; a group send pushes to their lists |
 * | `P:channel:C` | list | queued messages of channel `C`, each `<expires-at ms> <json>` |
 * | `P:g:{G}` | pub/sub | one message per group send: the message's JSON (an object), or a batch's (an array of them) |
 * | `P:proc:<processId>` | pub/sub | direct sends to one process's channels, and membership requests |
 *
 * The `{G}` hash tag keeps a group's keys and its pub/sub channel in one Redis Cluster
 * slot; with `sharded: true` the pub/sub channels use `SSUBSCRIBE`/`SPUBLISH`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ChainableCommander, Redis } from 'ioredis';
import { ChannelFullError, ServiceUnavailableError } from '../errors.js';
import {
  assertLayerMessage,
  assertValidName,
  Envelope,
  EnvelopeBatch,
  handOver,
  isValidName,
} from './layer.js';
import {
  assertPositiveIntegers,
  assertPrefix,
  assertRedisUrl,
  assertStatusAndClock,
  loggerOrDefault,
  RedisLifecycle,
  unavailable,
} from './redis-lifecycle.js';
import type {
  AttachOptions,
  ChannelLayer,
  ChannelReceiver,
  GroupSendResult,
  LayerMessage,
} from './layer.js';
import type { LayerStats } from './memory.js';

/** Whether the layer can reach Redis; see {@link RedisChannelLayerOptions.onStatus}. */
export type RedisLayerStatus = 'ready' | 'down';

/** Options of {@link RedisChannelLayer}. */
export interface RedisChannelLayerOptions {
  /**
   * Where Redis is: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * Prepended to every key and pub/sub channel, so several apps (or test runs) can share
   * one Redis. 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
   * @default 'portcullis'
   */
  prefix?: string;
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
   * @default false
   */
  sharded?: boolean;
  /** How long one connection attempt may take, in ms. @default 5000 */
  connectTimeout?: number;
  /**
   * How long a command may wait for its reply before it fails with
   * {@link ServiceUnavailableError}, in ms; bounds a call when Redis hangs without
   * closing the connection. @default 5000
   */
  commandTimeout?: number;
  /**
   * Upper bound of the reconnect delay, in ms. Delays grow exponentially from 50 ms,
   * with jitter, up to this. @default 2000
   */
  maxReconnectDelay?: number;
  /**
   * Called when the layer loses Redis (`'down'`) and when it is fully back (`'ready'`:
   * both connections up and every subscription restored). A gateway fails new
   * connections closed (1013) while down, and re-checks live credentials on `'ready'`,
   * since revocations published during the outage never reached this process.
   */
  onStatus?: (status: RedisLayerStatus) => void;
  /** Where connection problems are logged. @default warnings and errors to stderr */
  logger?: Logger;
  /** The clock used for message and membership expiry, for tests. @default Date.now */
  now?: () => number;
}

/** Counters of a {@link RedisChannelLayer}, for metrics and tests. */
export interface RedisLayerStats extends LayerStats {
  /** Group sends and list pushes that Redis did not take (it was down or timed out). */
  publishFailures: number;
}

/** The one Lua script: trims expired messages, then pushes unless the list is full. */
const PUSH_SCRIPT = `
local now = tonumber(ARGV[1])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local stamp = tonumber(string.match(head, '^%d+'))
  if stamp and stamp > now then break end
  redis.call('LPOP', KEYS[1])
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

interface ScriptedRedis extends Redis {
  /** `PUSH_SCRIPT`, defined through ioredis's `scripts` option (EVALSHA, EVAL on NOSCRIPT). */
  portcullisPush(
    key: string,
    now: number,
    capacity: number,
    ttl: number,
    item: string,
  ): Promise<number>;
}

const OWNER_PATTERN = /\.([0-9a-f]{12})\.[0-9a-z]+$/;
/** Idle `BLPOP` connections kept for the next `receive()`; more are opened on demand. */
const MAX_IDLE_BLOCKERS = 2;
/** Longest a `BLPOP` blocks, in seconds: how long an aborted `receive()` keeps its connection busy. */
const BLOCK_SECONDS = 1;

/**
 * A {@link ChannelLayer} over Redis, for running many gateway processes. See the module
 * documentation for the design and the Redis names it uses.
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

  readonly #prefix: string;
  readonly #capacity: number;
  readonly #expiry: number;
  readonly #groupExpiry: number;
  readonly #sharded: boolean;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #ownTopic: string;
  readonly #groupTopicStart: string;

  /** The command and subscriber connections, their status and reconnects. */
  readonly #redis: RedisLifecycle<ScriptedRedis>;
  #connecting: Promise<this> | undefined;
  #counter = 0;

  readonly #receivers = new Map<string, ChannelReceiver>();
  /** Attached channels whose receiver takes whole batches (`{ batches: true }`). */
  readonly #batchChannels = new Set<string>();
  /** group → attached local channel → joined at */
  readonly #local = new Map<string, Map<string, number>>();
  /** attached local channel → its groups, so detaching does not scan every group */
  readonly #memberOf = new Map<string, Set<string>>();
  /** this process's unattached channel → group → joined at (queued memberships) */
  readonly #queuedOf = new Map<string, Map<string, number>>();
  /** this process's unattached channels whose lists may hold messages */
  readonly #maybeQueued = new Set<string>();
  /** pub/sub channels this process must be subscribed to */
  readonly #wanted = new Set<string>();
  readonly #subscribing = new Map<string, Promise<void>>();
  readonly #idleBlockers: Redis[] = [];
  readonly #blockers = new Set<Redis>();

  /**
   * Checks the options; opens nothing until {@link connect}.
   *
   * @throws {TypeError} when `url`, `prefix`, `sharded`, `onStatus` or `now` is malformed.
   * @throws {RangeError} when a number is out of range.
   */
  constructor(options: RedisChannelLayerOptions = {}) {
    const {
      url = 'redis://127.0.0.1:6379',
      prefix = 'portcullis',
      capacity = 100,
      expiry = 60_000, // 1 min
      groupExpiry = 86_400_000, // 1 day, as Channels
      sharded = false,
      connectTimeout = 5_000, // 5 s
      commandTimeout = 5_000, // 5 s
      maxReconnectDelay = 2_000, // 2 s
      onStatus,
      logger,
      now = Date.now,
    } = options;
    assertRedisUrl(url);
    assertPrefix(prefix);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('The "capacity" option must be a positive integer');
    }
    assertPositiveIntegers({ expiry, connectTimeout, commandTimeout, maxReconnectDelay });
    if (!Number.isInteger(groupExpiry) || groupExpiry < 0) {
      throw new RangeError('The "groupExpiry" option must be a non-negative integer');
    }
    if (typeof sharded !== 'boolean') {
      throw new TypeError('The "sharded" option must be a boolean');
    }
    assertStatusAndClock(onStatus, now);
    this.#prefix = prefix;
    this.#capacity = capacity;
    this.#expiry = expiry;
    this.#groupExpiry = groupExpiry;
    this.#sharded = sharded;
    this.#logger = loggerOrDefault(logger);
    this.#now = now;
    this.#redis = new RedisLifecycle<ScriptedRedis>({
      url,
      connectTimeout,
      commandTimeout,
      maxReconnectDelay,
      onStatus,
      logger: this.#logger,
      label: 'redis channel layer',
      recover: (cmd, sub) => this.#recover(cmd, sub),
    });
    this.#ownTopic = `${prefix}:proc:${this.processId}`;
    this.#groupTopicStart = `${prefix}:g:{`;
    this.#wanted.add(this.#ownTopic);
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

  async #open(): Promise<this> {
    await this.#redis.open({
      cmd: {
        connectionName: `portcullis-${this.processId}-cmd`,
        scripts: { portcullisPush: { lua: PUSH_SCRIPT, numberOfKeys: 1 } },
      },
      sub: { connectionName: `portcullis-${this.processId}-sub` },
      opened: (sub) => {
        sub.on(this.#sharded ? 'smessage' : 'message', (topic: string, payload: string) =>
          this.#dispatch(topic, payload),
        );
      },
    });
    return this;
  }

  /**
   * After every (re)connect: subscribe to everything wanted, and re-register this
   * process's memberships in case Redis came back empty (restart without persistence).
   */
  async #recover(cmd: ScriptedRedis, sub: Redis): Promise<void> {
    const topics = [...this.#wanted];
    const subscribed = this.#sharded
      ? Promise.all(topics.map((topic) => sub.ssubscribe(topic)))
      : sub.subscribe(...topics);
    const batch = cmd.pipeline();
    for (const [group, members] of this.#local) {
      for (const [channel, joinedAt] of members)
        batch.zadd(this.#groupKey(group), joinedAt, channel);
      this.#expireGroup(batch, group, false);
    }
    for (const [channel, groups] of this.#queuedOf) {
      for (const [group, joinedAt] of groups) {
        batch.zadd(this.#groupKey(group), joinedAt, channel);
        batch.zadd(this.#queuedKey(group), joinedAt, channel);
        this.#expireGroup(batch, group, true);
      }
    }
    await Promise.all([subscribed, batch.length > 0 ? execChecked(batch) : undefined]);
  }

  // -- names -----------------------------------------------------------------------

  #groupKey(group: string): string {
    return `${this.#prefix}:group:{${group}}`;
  }

  #queuedKey(group: string): string {
    return `${this.#prefix}:group:{${group}}:queued`;
  }

  #groupTopic(group: string): string {
    return `${this.#groupTopicStart}${group}}`;
  }

  #procTopic(processId: string): string {
    return `${this.#prefix}:proc:${processId}`;
  }

  #listKey(channel: string): string {
    return `${this.#prefix}:channel:${channel}`;
  }

  /** The process id in a channel name from some process's `newChannel()`. */
  #ownerOf(channel: string): string | undefined {
    return OWNER_PATTERN.exec(channel)?.[1];
  }

  // -- plumbing ----------------------------------------------------------------------

  /** The command connection. @throws TypeError before connect(), ServiceUnavailableError after close(). */
  #command(): ScriptedRedis {
    return this.#redis.command(
      'RedisChannelLayer is not connected: use `await RedisChannelLayer.connect(options)` ' +
        'or `await layer.connect()` first',
    );
  }

  #publish(topic: string, payload: string): Promise<number> {
    const cmd = this.#command();
    return this.#sharded ? cmd.spublish(topic, payload).then(Number) : cmd.publish(topic, payload);
  }

  #expireGroup(batch: ChainableCommander, group: string, queued: boolean): void {
    if (this.#groupExpiry === 0) return;
    const keys = queued ? [this.#groupKey(group), this.#queuedKey(group)] : [this.#groupKey(group)];
    for (const key of keys) batch.pexpire(key, this.#groupExpiry);
  }

  #hand(receiver: ChannelReceiver, delivery: Envelope | EnvelopeBatch, count = 1): void {
    if (handOver(receiver, delivery)) this.stats.delivered += count;
  }

  /** Pushes onto a channel's list; false when it is full. @throws what Redis throws. */
  async #push(channel: string, json: string): Promise<boolean> {
    const now = this.#now();
    const pushed = await this.#command().portcullisPush(
      this.#listKey(channel),
      now,
      this.#capacity,
      this.#expiry,
      `${now + this.#expiry} ${json}`,
    );
    if (this.#ownerOf(channel) === this.processId && !this.#receivers.has(channel)) {
      this.#maybeQueued.add(channel);
    }
    if (pushed === 1) {
      this.stats.delivered += 1;
      return true;
    }
    this.stats.dropped += 1;
    return false;
  }

  /** A list item's message, or undefined when it expired or is not ours. */
  #decodeItem(item: string): LayerMessage | undefined {
    const space = item.indexOf(' ');
    const expiresAt = Number(item.slice(0, space));
    if (space < 1 || !(expiresAt > this.#now())) return undefined;
    return this.#decode(item.slice(space + 1));
  }

  #decode(json: string): LayerMessage | undefined {
    try {
      const message: unknown = JSON.parse(json);
      assertLayerMessage(message);
      return message;
    } catch (err) {
      // Someone else published on our prefix; never let it reach a consumer.
      this.#logger.warn({ err }, 'redis channel layer: dropped a malformed message');
      return undefined;
    }
  }

  /** A group payload of {@link groupSendMany}: a JSON array of two or more messages. */
  #decodeBatch(json: string): LayerMessage[] | undefined {
    try {
      const messages: unknown = JSON.parse(json);
      if (!Array.isArray(messages) || messages.length < 2) throw new TypeError('not a batch');
      for (const message of messages) assertLayerMessage(message);
      return messages as LayerMessage[];
    } catch (err) {
      this.#logger.warn({ err }, 'redis channel layer: dropped a malformed batch');
      return undefined;
    }
  }

  #ensureSubscribed(topic: string): Promise<void> {
    if (this.#wanted.has(topic)) return this.#subscribing.get(topic) ?? Promise.resolve();
    this.#wanted.add(topic);
    const sub = this.#redis.sub!;
    const subscribing = (this.#sharded ? sub.ssubscribe(topic) : sub.subscribe(topic)).then(
      () => {
        if (this.#subscribing.get(topic) === subscribing) this.#subscribing.delete(topic);
      },
      (err: unknown) => {
        // Left in #wanted: if the caller does not roll back, #recover subscribes it.
        if (this.#subscribing.get(topic) === subscribing) this.#subscribing.delete(topic);
        throw unavailable(err);
      },
    );
    this.#subscribing.set(topic, subscribing);
    return subscribing;
  }

  #release(topic: string): void {
    this.#wanted.delete(topic);
    this.#subscribing.delete(topic);
    const sub = this.#redis.sub;
    if (sub?.status !== 'ready') return; // a new connection will not have it
    const leaving = this.#sharded ? sub.sunsubscribe(topic) : sub.unsubscribe(topic);
    leaving.catch((err: unknown) => this.#logger.debug({ err, topic }, 'unsubscribe failed'));
  }

  #addLocal(group: string, channel: string, joinedAt: number): void {
    let members = this.#local.get(group);
    if (members === undefined) {
      members = new Map();
      this.#local.set(group, members);
    }
    members.set(channel, joinedAt);
    let groups = this.#memberOf.get(channel);
    if (groups === undefined) {
      groups = new Set();
      this.#memberOf.set(channel, groups);
    }
    groups.add(group);
  }

  #dropLocal(group: string, channel: string): void {
    const groups = this.#memberOf.get(channel);
    groups?.delete(group);
    if (groups?.size === 0) this.#memberOf.delete(channel);
    const members = this.#local.get(group);
    if (members === undefined || !members.delete(channel)) return;
    if (members.size > 0) return;
    this.#local.delete(group);
    this.#release(this.#groupTopic(group));
  }

  #addQueued(group: string, channel: string, joinedAt: number): void {
    let groups = this.#queuedOf.get(channel);
    if (groups === undefined) {
      groups = new Map();
      this.#queuedOf.set(channel, groups);
    }
    groups.set(group, joinedAt);
    this.#maybeQueued.add(channel);
  }

  #dropQueued(group: string, channel: string): void {
    const groups = this.#queuedOf.get(channel);
    groups?.delete(group);
    if (groups?.size === 0) this.#queuedOf.delete(channel);
  }

  /** Records a membership in Redis: the group set, and the queued set when `queued`. */
  async #register(
    group: string,
    channel: string,
    joinedAt: number,
    queued: boolean,
  ): Promise<void> {
    const batch = this.#command().pipeline();
    const keys = queued ? [this.#groupKey(group), this.#queuedKey(group)] : [this.#groupKey(group)];
    for (const key of keys) {
      batch.zadd(key, joinedAt, channel);
      // Expired members are removed here, on joins, rather than on every send.
      if (this.#groupExpiry > 0) batch.zremrangebyscore(key, '-inf', joinedAt - this.#groupExpiry);
    }
    this.#expireGroup(batch, group, queued);
    await execChecked(batch);
  }

  // -- incoming pub/sub --------------------------------------------------------------

  #dispatch(topic: string, payload: string): void {
    if (topic === this.#ownTopic) this.#onDirect(payload);
    else if (topic.startsWith(this.#groupTopicStart) && topic.endsWith('}')) {
      this.#onGroupMessage(topic.slice(this.#groupTopicStart.length, -1), payload);
    }
  }

  #onGroupMessage(group: string, json: string): void {
    const members = this.#local.get(group);
    if (members === undefined) return;
    // Decoded once; the one envelope (with the JSON text as received) or batch goes to
    // every member. A batch payload is a JSON array, a single message an object.
    let envelopes: Envelope[];
    if (json.startsWith('[')) {
      const messages = this.#decodeBatch(json);
      if (messages === undefined) return;
      envelopes = messages.map((message) => new Envelope(message));
    } else {
      const message = this.#decode(json);
      if (message === undefined) return;
      envelopes = [new Envelope(message, json)];
    }
    const batch = envelopes.length > 1 ? new EnvelopeBatch(envelopes) : undefined;
    const expiredBefore = this.#groupExpiry > 0 ? this.#now() - this.#groupExpiry : -Infinity;
    for (const [channel, joinedAt] of members) {
      if (joinedAt <= expiredBefore) {
        this.#dropLocal(group, channel);
        continue;
      }
      const receiver = this.#receivers.get(channel);
      if (receiver === undefined) continue;
      // Member by member, the whole batch at once: see groupSendMany.
      if (batch !== undefined && this.#batchChannels.has(channel))
        this.#hand(receiver, batch, envelopes.length);
      else for (const envelope of envelopes) this.#hand(receiver, envelope);
    }
  }

  /** `m <channel> <json>` (a send), `a <group> <channel>` / `d <group> <channel>` (membership). */
  #onDirect(payload: string): void {
    const kind = payload.slice(0, 2);
    const rest = payload.slice(2);
    const space = rest.indexOf(' ');
    const first = rest.slice(0, space);
    const second = rest.slice(space + 1);
    if (space < 1 || !isValidName(first)) return;
    if (kind === 'm ') this.#onDirectSend(first, second);
    else if (kind === 'a ' && isValidName(second)) this.#onRemoteAdd(first, second);
    else if (kind === 'd ' && isValidName(second)) {
      this.#dropLocal(first, second);
      this.#dropQueued(first, second);
    }
  }

  #onDirectSend(channel: string, json: string): void {
    const receiver = this.#receivers.get(channel);
    if (receiver !== undefined) {
      const message = this.#decode(json);
      if (message !== undefined) this.#hand(receiver, new Envelope(message, json));
      return;
    }
    // No receiver here: a worker may be calling receive(), which reads the list. The
    // sender has been answered already, so a full list is only counted, here.
    this.#push(channel, json).catch((err: unknown) => {
      this.stats.publishFailures += 1;
      this.#logger.warn({ err, channel }, 'redis channel layer: could not queue a message');
    });
  }

  /** Another process asked to add one of this process's channels to a group. */
  #onRemoteAdd(group: string, channel: string): void {
    const joinedAt = this.#now();
    const attached = this.#receivers.has(channel);
    if (attached) this.#addLocal(group, channel, joinedAt);
    else this.#addQueued(group, channel, joinedAt);
    Promise.all([
      this.#register(group, channel, joinedAt, !attached),
      attached ? this.#ensureSubscribed(this.#groupTopic(group)) : undefined,
    ]).catch((err: unknown) =>
      this.#logger.warn({ err, group }, 'redis channel layer: could not join a group'),
    );
  }

  // -- ChannelLayer ------------------------------------------------------------------

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
    if (this.#ownerOf(channel) !== this.processId) {
      throw new TypeError(
        `Channel ${channel} was not made by this layer's newChannel(); only those can be attached`,
      );
    }
    if (this.#receivers.has(channel)) {
      throw new TypeError(`Channel ${channel} already has a receiver`);
    }
    this.#receivers.set(channel, receiver);
    if (options.batches === true) this.#batchChannels.add(channel);
    const queued = this.#queuedOf.get(channel);
    if (queued !== undefined) {
      this.#queuedOf.delete(channel);
      for (const [group, joinedAt] of queued) this.#promote(group, channel, joinedAt);
    }
    if (this.#maybeQueued.delete(channel)) this.#drain(channel, receiver);
  }

  detach(channel: string, receiver?: ChannelReceiver): void | Promise<void> {
    const attached = this.#receivers.get(channel);
    if (attached === undefined || (receiver !== undefined && attached !== receiver)) return;
    this.#receivers.delete(channel);
    this.#batchChannels.delete(channel);
    const groups = [...(this.#memberOf.get(channel) ?? [])];
    for (const group of groups) this.#dropLocal(group, channel);
    if (groups.length === 0 || this.#redis.cmd?.status !== 'ready') return; // expiry cleans up
    const batch = this.#redis.cmd.pipeline();
    for (const group of groups) batch.zrem(this.#groupKey(group), channel);
    return execChecked(batch).then(
      () => undefined,
      (err: unknown) => {
        this.#logger.warn({ err, channel }, 'could not leave groups on detach; they expire');
      },
    );
  }

  /** A queued member of this process got a receiver: group messages now come by pub/sub. */
  #promote(group: string, channel: string, joinedAt: number): void {
    this.#addLocal(group, channel, joinedAt);
    this.#ensureSubscribed(this.#groupTopic(group)).catch((err: unknown) =>
      this.#logger.warn({ err, group }, 'redis channel layer: could not subscribe'),
    );
    if (this.#redis.cmd?.status !== 'ready') return; // #recover re-registers it
    this.#redis.cmd
      .zrem(this.#queuedKey(group), channel)
      .catch((err: unknown) => this.#logger.debug({ err, group }, 'zrem failed'));
  }

  #drain(channel: string, receiver: ChannelReceiver): void {
    if (this.#redis.cmd?.status !== 'ready') return;
    this.#redis.cmd
      .lpop(this.#listKey(channel), this.#capacity)
      .then((items) => {
        if (this.#receivers.get(channel) !== receiver) return;
        for (const item of items ?? []) {
          const message = this.#decodeItem(item);
          if (message !== undefined) this.#hand(receiver, new Envelope(message));
        }
      })
      .catch((err: unknown) => this.#logger.debug({ err, channel }, 'drain failed'));
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
    const owner = this.#ownerOf(channel);
    if (owner === this.processId) {
      const receiver = this.#receivers.get(channel);
      if (receiver !== undefined) {
        this.#hand(receiver, new Envelope(message));
        return;
      }
    }
    this.#command();
    const json = JSON.stringify(message);
    try {
      // No subscriber (the owner process is gone): queue it like any unattached channel,
      // where it expires unless someone receives it.
      if (owner !== undefined && owner !== this.processId) {
        if ((await this.#publish(this.#procTopic(owner), `m ${channel} ${json}`)) > 0) return;
      }
      if (await this.#push(channel, json)) return;
    } catch (err) {
      this.stats.publishFailures += 1;
      throw unavailable(err);
    }
    throw new ChannelFullError(channel);
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
      const key = this.#listKey(channel);
      const wait = async (): Promise<void> => {
        const client = await this.#takeBlocker();
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
            const message = this.#decodeItem(reply[1]);
            if (message !== undefined) settle(() => resolve(message));
          }
        } catch (err) {
          this.#discardBlocker(client);
          throw err;
        }
        this.#releaseBlocker(client);
      };
      wait().catch((err: unknown) => {
        if (settled && !this.#redis.closed) {
          this.#logger.warn({ err, channel }, 'redis channel layer: receive() failed after abort');
        }
        settle(() => reject(unavailable(err)));
      });
    });
  }

  async #takeBlocker(): Promise<Redis> {
    for (let idle = this.#idleBlockers.pop(); idle !== undefined; idle = this.#idleBlockers.pop()) {
      if (idle.status === 'ready') return idle;
      this.#discardBlocker(idle);
    }
    const client = this.#redis.newClient({
      lazyConnect: true,
      // Disposable: a dropped blocking connection fails its receive() and is not revived.
      retryStrategy: () => null,
      connectionName: `portcullis-${this.processId}-blpop`,
    });
    client.on('error', (err: Error) => this.#logger.debug({ err }, 'redis blpop connection error'));
    this.#blockers.add(client);
    try {
      await client.connect();
    } catch (err) {
      this.#discardBlocker(client);
      throw unavailable(err);
    }
    if (this.#redis.closed) {
      this.#discardBlocker(client);
      throw new ServiceUnavailableError('redis');
    }
    return client;
  }

  #releaseBlocker(client: Redis): void {
    if (
      this.#redis.closed ||
      client.status !== 'ready' ||
      this.#idleBlockers.length >= MAX_IDLE_BLOCKERS
    ) {
      this.#discardBlocker(client);
    } else this.#idleBlockers.push(client);
  }

  #discardBlocker(client: Redis): void {
    this.#blockers.delete(client);
    const index = this.#idleBlockers.indexOf(client);
    if (index !== -1) this.#idleBlockers.splice(index, 1);
    client.disconnect();
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
    this.#command();
    const joinedAt = this.#now();
    const owner = this.#ownerOf(channel);
    if (owner === this.processId && this.#receivers.has(channel)) {
      const renewal = this.#local.get(group)?.has(channel) === true;
      this.#addLocal(group, channel, joinedAt);
      const results = await Promise.allSettled([
        this.#register(group, channel, joinedAt, false),
        this.#ensureSubscribed(this.#groupTopic(group)),
      ]);
      const failed = results.find((result) => result.status === 'rejected');
      if (failed === undefined) return;
      if (!renewal && this.#local.get(group)?.get(channel) === joinedAt) {
        this.#dropLocal(group, channel);
      }
      throw unavailable(failed.reason);
    }
    try {
      if (owner !== undefined && owner !== this.processId) {
        await this.#register(group, channel, joinedAt, false);
        const reached = await this.#publish(this.#procTopic(owner), `a ${group} ${channel}`);
        if (reached > 0) return;
      }
      // Without a receiver (or whose process is gone): a queued member.
      await this.#register(group, channel, joinedAt, true);
      if (owner === this.processId) this.#addQueued(group, channel, joinedAt);
    } catch (err) {
      throw unavailable(err);
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
    this.#dropLocal(group, channel);
    this.#dropQueued(group, channel);
    const owner = this.#ownerOf(channel);
    try {
      await execChecked(
        cmd.pipeline().zrem(this.#groupKey(group), channel).zrem(this.#queuedKey(group), channel),
      );
      if (owner !== undefined && owner !== this.processId) {
        await this.#publish(this.#procTopic(owner), `d ${group} ${channel}`);
      }
    } catch (err) {
      throw unavailable(err);
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
    return this.#sendToGroup(group, [JSON.stringify(message)]);
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
    return this.#sendToGroup(
      group,
      messages.map((message) => JSON.stringify(message)),
    );
  }

  async #sendToGroup(group: string, jsons: readonly string[]): Promise<GroupSendResult> {
    const cmd = this.#command();
    // One message travels as its object, several as an array: what #onGroupMessage reads.
    const payload = jsons.length === 1 ? jsons[0]! : `[${jsons.join(',')}]`;
    const queuedKey = this.#queuedKey(group);
    const topic = this.#groupTopic(group);
    // A member that joined here (attach after groupAdd) must see a send made here after it.
    await this.#subscribing.get(topic)?.catch(() => {});
    let published: number;
    let queued: string[];
    try {
      [published, queued] = await Promise.all([
        this.#publish(topic, payload),
        this.#groupExpiry > 0
          ? cmd.zrangebyscore(queuedKey, `(${this.#now() - this.#groupExpiry}`, '+inf')
          : cmd.zrange(queuedKey, 0, '-1'),
      ]);
    } catch (err) {
      this.stats.publishFailures += 1;
      throw unavailable(err);
    }
    let delivered = published * jsons.length;
    let dropped = 0;
    const outcomes = await Promise.all(queued.map((channel) => this.#pushAll(channel, jsons)));
    for (const pushed of outcomes) {
      delivered += pushed;
      dropped += jsons.length - pushed;
    }
    return { delivered, dropped };
  }

  /** Pushes messages onto a queued member's list in order; how many went in. */
  async #pushAll(channel: string, jsons: readonly string[]): Promise<number> {
    let pushed = 0;
    for (const json of jsons) {
      try {
        if (await this.#push(channel, json)) pushed += 1;
      } catch {
        // Redis failed mid-way: the rest of this member's messages count as dropped.
        this.stats.publishFailures += 1;
        break;
      }
    }
    return pushed;
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
      return this.#groupExpiry > 0
        ? await cmd.zrangebyscore(
            this.#groupKey(group),
            `(${this.#now() - this.#groupExpiry}`,
            '+inf',
          )
        : await cmd.zrange(this.#groupKey(group), 0, '-1');
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * Resolves when both connections are up and Redis answers `PING`; for readiness.
   *
   * @example
   * ```ts
   * app.get('/readyz', async () => { await layer.ping(); return { ok: true }; });
   * ```
   * @throws {ServiceUnavailableError} otherwise, at once (nothing waits for Redis).
   */
  async ping(): Promise<void> {
    const cmd = this.#command();
    if (this.#redis.sub?.status !== 'ready') throw new ServiceUnavailableError('redis');
    try {
      await cmd.ping();
    } catch (err) {
      throw unavailable(err);
    }
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
    for (const blocker of [...this.#blockers]) this.#discardBlocker(blocker);
    await this.#redis.disconnect();
    this.#receivers.clear();
    this.#local.clear();
    this.#memberOf.clear();
    this.#queuedOf.clear();
    this.#maybeQueued.clear();
    this.#wanted.clear();
    this.#subscribing.clear();
  }
}

/** Runs a pipeline; rejects with the first command's error (ioredis reports them per command). */
async function execChecked(batch: ChainableCommander): Promise<void> {
  const results = await batch.exec();
  if (results === null) throw new Error('pipeline aborted');
  for (const [err] of results) if (err !== null) throw err;
}
