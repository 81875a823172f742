/**
 * Presence over Redis: who is in a group across every gateway process, with enter and
 * leave events, and heartbeat expiry so that the members of a killed process disappear
 * (issue 5, item 3). The contract is {@link Presence}; this module is its many-process
 * implementation.
 *
 * How it works:
 *
 * - **Atomic per group.** Every change to a group runs as one Lua script over the
 *   group's three keys (one Redis Cluster slot, thanks to the `{G}` hash tag): "add this
 *   connection and tell me whether it is the user's first", "remove it and tell me
 *   whether it was the last", "drop the expired ones". The script that changes a user's
 *   presence also publishes the event, so each enter or leave is published exactly
 *   once, by whichever process caused it, even if that process dies right after.
 * - **Heartbeats and expiry** (`presence-heartbeat.ts`). Each process renews its own
 *   connections; a connection whose score is older than `ttl` belongs to a process that
 *   stopped heartbeating. Every script on a group first removes such connections from
 *   it (publishing leave events for users left with none), so `members()` never lists
 *   one, and a sweeper expires the groups nobody touches.
 * - **Events.** One pub/sub channel per prefix carries every enter and leave; each
 *   process holds one subscription and hands events to its local listeners. Presence
 *   changes are rare next to messages, and one channel is what lets a listener hear
 *   groups with no local members (a killed process's rooms). It is a classic (not
 *   sharded) channel: the scripts publish from whichever slot their group is in.
 *
 * Scores come from each process's clock (`now`), so processes' clocks must agree to
 * well within `ttl - heartbeatInterval` (NTP does). Every process sharing a prefix must
 * use the same `ttl`. Keys expire `3 × ttl` after their last touch, so a prefix whose
 * every process is gone leaves nothing behind. `names.ts` lists the Redis names.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ServiceUnavailableError } from '../../errors.js';
import { assertValidName } from '../layer.js';
import { assertMemberId, assertPresenceMember, PresenceListeners, sortUsers } from '../presence.js';
import type {
  Presence,
  PresenceJoinResult,
  PresenceLeaveResult,
  PresenceListener,
  PresenceMember,
  PresenceUser,
} from '../presence.js';
import { RedisLifecycle } from './lifecycle.js';
import { PresenceNames } from './names.js';
import {
  assertPositiveIntegers,
  assertPrefix,
  assertRedisUrl,
  assertStatusAndClock,
  loggerOrDefault,
} from './options.js';
import type { RedisConnectionOptions } from './options.js';
import { PresenceHeartbeat } from './presence-heartbeat.js';
import type { LocalConnection } from './presence-heartbeat.js';
import { formatInfo, parseEvent, parseInfo } from './presence-info.js';
import { presenceScripts } from './presence-scripts.js';
import type { PresenceRedis } from './presence-scripts.js';

/** Whether presence can reach Redis; see {@link RedisPresenceOptions.onStatus}. */
export type RedisPresenceStatus = 'ready' | 'down';

/** Options of {@link RedisPresence}. */
export interface RedisPresenceOptions extends RedisConnectionOptions {
  /**
   * This process's id in the registry; pass the channel layer's `processId` to see one
   * id per process in Redis. 1 to 64 letters, digits, `-`, `_` or `.`; unique per prefix.
   * @default 12 random hex digits
   */
  processId?: string;
  /**
   * How often this process renews its connections and sweeps dead processes, in ms.
   * @default 10000 (10 s)
   */
  heartbeatInterval?: number;
  /**
   * How long a connection lives without a heartbeat, in ms: after a process dies, its
   * users leave within about `ttl + heartbeatInterval`. Greater than
   * `heartbeatInterval` (twice or more leaves room for a slow heartbeat).
   * @default 30000 (30 s)
   */
  ttl?: number;
  /**
   * Called when presence loses Redis (`'down'`: a connection dropped, or the first
   * command that failed for want of Redis) and when it is back (`'ready'`: Redis
   * answers, events subscribed, this process's connections registered again). Events
   * published while down are not delivered here.
   */
  onStatus?: (status: RedisPresenceStatus) => void;
  /** The clock for heartbeat scores and expiry, for tests. @default Date.now */
  now?: () => number;
}

const PROCESS_ID_PATTERN = /^[A-Za-z0-9\-_.]{1,64}$/;

/**
 * A {@link Presence} over Redis, for many gateway processes sharing one Redis. See the
 * module documentation for the design and `names.ts` for the Redis names it uses.
 *
 * `ioredis` is imported by {@link connect}, so apps that never use Redis never load it.
 * While Redis is away every method rejects at once with {@link ServiceUnavailableError}
 * (nothing is queued); `leave()` still forgets the connection locally, so it stops
 * being renewed and expires from Redis by itself. When Redis returns, this process
 * registers its live connections again.
 *
 * @example
 * ```ts
 * const presence = await RedisPresence.connect({
 *   url: process.env.REDIS_URL,
 *   processId: layer.processId,
 * });
 * presence.onChange(({ group, type, username }) => notify(group, type, username));
 * const { first } = await presence.join('room-1', { id: channel, userId: '7', username: 'ada' });
 * // on shutdown: leaves this process's connections at once, then disconnects
 * await presence.close();
 * ```
 */
export class RedisPresence implements Presence {
  /** This process's id in the registry. */
  readonly processId: string;

  readonly #ttl: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #listeners: PresenceListeners;
  readonly #names: PresenceNames;
  /** The command and subscriber connections, their status and reconnects. */
  readonly #redis: RedisLifecycle<PresenceRedis>;
  readonly #heartbeat: PresenceHeartbeat;
  #connecting: Promise<this> | undefined;

  /**
   * Checks the options; opens nothing until {@link connect}.
   *
   * @example
   * ```ts
   * const presence = new RedisPresence({ prefix: 'myapp', ttl: 20_000 });
   * await presence.connect();
   * ```
   * @throws {TypeError} when `url`, `cluster`, `prefix`, `processId`, `onStatus` or `now`
   * is malformed.
   * @throws {RangeError} when a number is out of range, or `ttl` is not above `heartbeatInterval`.
   */
  constructor(options: RedisPresenceOptions = {}) {
    const {
      url = 'redis://127.0.0.1:6379',
      cluster = false,
      prefix = 'portcullis',
      processId = randomBytes(6).toString('hex'),
      heartbeatInterval = 10_000, // 10 s
      ttl = 30_000, // 30 s: two heartbeats may be missed before a process counts as dead
      connectTimeout = 5_000, // 5 s
      commandTimeout = 1_500, // 1.5 s, as the channel layer's
      maxReconnectDelay = 2_000, // 2 s
      onStatus,
      logger,
      now = Date.now,
    } = options;
    assertRedisUrl(url, cluster);
    assertPrefix(prefix);
    if (typeof processId !== 'string' || !PROCESS_ID_PATTERN.test(processId)) {
      throw new TypeError(
        'The "processId" option must be 1 to 64 letters, digits, "-", "_" or "."',
      );
    }
    assertPositiveIntegers({
      heartbeatInterval,
      ttl,
      connectTimeout,
      commandTimeout,
      maxReconnectDelay,
    });
    if (ttl <= heartbeatInterval) {
      throw new RangeError('The "ttl" option must be greater than "heartbeatInterval"');
    }
    assertStatusAndClock(onStatus, now);
    this.processId = processId;
    this.#ttl = ttl;
    this.#logger = loggerOrDefault(logger);
    this.#now = now;
    this.#listeners = new PresenceListeners(this.#logger);
    this.#names = new PresenceNames(prefix);
    this.#redis = new RedisLifecycle<PresenceRedis>({
      url,
      cluster,
      connectTimeout,
      commandTimeout,
      maxReconnectDelay,
      onStatus,
      logger: this.#logger,
      label: 'presence',
      // Redis may have restarted empty, or the others may have expired this process
      // while it was cut off: subscribe, and register every live connection again.
      recover: (cmd, sub) =>
        Promise.all([sub.subscribe(this.#names.events), this.#heartbeat.register(cmd)]),
    });
    this.#heartbeat = new PresenceHeartbeat({
      processId,
      names: this.#names,
      redis: this.#redis,
      heartbeatInterval,
      ttl,
      now,
      logger: this.#logger,
    });
  }

  /**
   * Creates a presence and connects it. Resolves once Redis answered or the first
   * attempt failed: with Redis unreachable, the calls reject with
   * {@link ServiceUnavailableError} until it is reachable.
   *
   * @example
   * ```ts
   * const presence = await RedisPresence.connect({ url: 'redis://127.0.0.1:6379' });
   * ```
   * @throws {TypeError} for malformed options. @throws {RangeError} for out-of-range ones.
   */
  static async connect(options: RedisPresenceOptions = {}): Promise<RedisPresence> {
    return new RedisPresence(options).connect();
  }

  /**
   * Loads `ioredis`, opens the command and subscriber connections and starts the
   * heartbeat; see {@link RedisPresence.connect}. Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * await new RedisPresence({ prefix: 'myapp' }).connect();
   * ```
   */
  connect(): Promise<this> {
    this.#connecting ??= this.#open();
    return this.#connecting;
  }

  /** `'ready'` when both connections are up and this process is registered, `'down'` otherwise. */
  get status(): RedisPresenceStatus {
    return this.#redis.status;
  }

  async #open(): Promise<this> {
    const scripts = await presenceScripts();
    await this.#redis.open({
      cmd: { connectionName: `portcullis-presence-${this.processId}-cmd`, scripts },
      sub: { connectionName: `portcullis-presence-${this.processId}-sub` },
      opened: (sub) => {
        sub.on('message', (topic: string, payload: string) => {
          if (topic === this.#names.events) this.#onEvent(payload);
        });
        this.#heartbeat.start();
      },
    });
    return this;
  }

  /** The command connection when Redis is usable. @throws ServiceUnavailableError otherwise. */
  #command(): PresenceRedis {
    return this.#redis.command(
      'RedisPresence is not connected: use `await RedisPresence.connect(options)` ' +
        'or `await presence.connect()` first',
    );
  }

  #onEvent(payload: string): void {
    const event = parseEvent(payload);
    if (event === undefined) this.#logger.warn('presence: dropped a malformed event');
    else this.#listeners.emit(event);
  }

  /**
   * Adds a connection to a group and keeps it there with this process's heartbeat;
   * see {@link Presence.join}. The enter event (when `first`) reaches every process's
   * listeners, this one's included, through Redis.
   *
   * @example
   * ```ts
   * const { first } = await presence.join('room-1', { id: channel, userId: '7', username: 'ada' });
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable; nothing joined.
   * @throws {InvalidChannelNameError} for a bad group name. @throws {TypeError} for a
   * malformed member, or before {@link connect}.
   */
  async join(group: string, member: PresenceMember): Promise<PresenceJoinResult> {
    assertValidName('group', group);
    assertPresenceMember(member);
    const cmd = this.#command();
    const mine: LocalConnection = { info: formatInfo(this.processId, member) };
    const previous = this.#heartbeat.remember(group, member.id, mine);
    // Written in this order on one connection: the group set, which the sweeper reads
    // to find this group should this process die, is updated before the join.
    const registered = cmd.sadd(this.#names.groupsOf(this.processId), group);
    const touched = this.#heartbeat.touch(cmd, group, this.#now(), [member.id, mine.info]);
    try {
      const [, firsts] = await Promise.all([registered, touched]);
      return { first: firsts[0] === 1 };
    } catch (err) {
      this.#heartbeat.undo(group, member.id, mine, previous);
      throw this.#redis.failure(err);
    }
  }

  /**
   * Removes a connection from a group; see {@link Presence.leave}. The connection is
   * forgotten locally first, so even when Redis is unreachable it stops being renewed
   * and leaves (with its event) once it expires. Call it on the process that joined the
   * connection: another process's connection would come back with its next heartbeat.
   *
   * @example
   * ```ts
   * const left = await presence.leave('room-1', channel);
   * if (left?.last) console.log(`${left.username} left`);
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   * @throws {InvalidChannelNameError} for a bad group name. @throws {TypeError} for a
   * malformed id, or before {@link connect}.
   */
  async leave(group: string, memberId: string): Promise<PresenceLeaveResult | undefined> {
    assertValidName('group', group);
    assertMemberId(memberId);
    if (this.#redis.closed) throw new ServiceUnavailableError('redis');
    const emptied = this.#heartbeat.forget(group, memberId);
    const cmd = this.#command();
    const leaving = this.#leave(cmd, group, memberId);
    if (emptied) {
      cmd
        .srem(this.#names.groupsOf(this.processId), group)
        .catch((err: unknown) => this.#logger.debug({ err, group }, 'presence: srem failed'));
    }
    let reply: [number, string] | null;
    try {
      reply = await leaving;
    } catch (err) {
      throw this.#redis.failure(err);
    }
    if (reply === null) return undefined;
    const user = parseInfo(reply[1]);
    if (user === undefined) return undefined;
    return { last: reply[0] === 1, ...user };
  }

  #leave(cmd: PresenceRedis, group: string, memberId: string): Promise<[number, string] | null> {
    return cmd.presenceLeave(...this.#names.groupKeys(group), memberId, this.#names.events, group);
  }

  /**
   * The users in a group across every process; see {@link Presence.members}. Expired
   * connections are removed first (with their leave events), so a dead process's users
   * are never listed.
   *
   * @example
   * ```ts
   * const users = await presence.members('room-1');
   * // [{ userId: '7', username: 'ada', connections: 2 }]
   * ```
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   * @throws {InvalidChannelNameError} for a bad group name. @throws {TypeError} before {@link connect}.
   */
  async members(group: string): Promise<PresenceUser[]> {
    assertValidName('group', group);
    const cmd = this.#command();
    let infos: string[];
    try {
      infos = await cmd.presenceList(
        ...this.#names.groupKeys(group),
        this.#now() - this.#ttl,
        this.#names.events,
        group,
      );
    } catch (err) {
      throw this.#redis.failure(err);
    }
    const users = new Map<string, { username: string; connections: number }>();
    for (const info of infos) {
      const parsed = parseInfo(info);
      if (parsed === undefined) continue;
      const user = users.get(parsed.userId);
      if (user === undefined)
        users.set(parsed.userId, { username: parsed.username, connections: 1 });
      else user.connections += 1;
    }
    return sortUsers(
      [...users].map(([userId, { username, connections }]) => ({ userId, username, connections })),
    );
  }

  /**
   * Listens to enter and leave events from every process; see {@link Presence.onChange}.
   *
   * @example
   * ```ts
   * const stop = presence.onChange(({ group, type, username }) => notify(group, type, username));
   * ```
   * @throws {TypeError} when `listener` is not a function.
   */
  onChange(listener: PresenceListener): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Stops the heartbeat, removes this process's connections from Redis (so the other
   * processes see their users leave now rather than after `ttl`), and disconnects.
   * Idempotent; with Redis unreachable the connections simply expire.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void presence.close());
   * ```
   */
  async close(): Promise<void> {
    const cmd = this.#redis.usable; // taken before markClosed(), which makes it undefined
    if (!this.#redis.markClosed()) return;
    if (cmd !== undefined) {
      const work: Promise<unknown>[] = [];
      for (const [group, members] of this.#heartbeat.local) {
        for (const id of members.keys()) work.push(this.#leave(cmd, group, id));
      }
      work.push(
        cmd.zrem(this.#names.registry, this.processId),
        cmd.del(this.#names.groupsOf(this.processId)),
      );
      await Promise.allSettled(work);
    }
    this.#listeners.clear();
    await this.#heartbeat.stop();
    await this.#redis.disconnect();
  }
}
