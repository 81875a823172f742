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
 * - **Heartbeats.** Every `heartbeatInterval` a process re-touches each of its own live
 *   connections (their score becomes the current time, one script call per group) and
 *   stamps itself in the process registry. Touching re-adds a connection that is
 *   missing, so the heartbeat also re-registers everything after Redis restarted empty
 *   or after other processes expired this one while it was cut off.
 * - **Expiry.** A connection whose score is older than `ttl` belongs to a process that
 *   stopped heartbeating. Every script on a group first removes such connections from
 *   it (publishing leave events for users left with none), so `members()` never lists
 *   one. For groups nobody touches, a sweeper (every `heartbeatInterval`, at most one
 *   process at a time through a short lock) finds dead processes in the registry and
 *   expires their groups, then forgets the process unless it heartbeat meanwhile.
 *   Every step is idempotent, so a racing second sweeper or a process coming back to
 *   life at the wrong moment changes nothing but timing.
 * - **Events.** One pub/sub channel per prefix carries every enter and leave; each
 *   process holds one subscription and hands events to its local listeners. Presence
 *   changes are rare next to messages, and one channel is what lets a listener hear
 *   groups with no local members (a killed process's rooms).
 *
 * Scores come from each process's clock (`now`), so processes' clocks must agree to
 * well within `ttl - heartbeatInterval` (NTP does). Every process sharing a prefix must
 * use the same `ttl`.
 *
 * Redis names, for operators (`P` is the `prefix` option, `portcullis` by default):
 *
 * | name | type | holds |
 * |---|---|---|
 * | `P:presence:group:{G}` | sorted set | connection id → its last heartbeat (ms) |
 * | `P:presence:group:{G}:info` | hash | connection id → `<processId>\|<userId>\|<username>` (`%` and `\|` escaped) |
 * | `P:presence:group:{G}:users` | hash | user id → connections in `G` |
 * | `P:presence:{procs}` | sorted set | process id → its last heartbeat (ms) |
 * | `P:presence:{procs}:groups:<processId>` | set | groups the process has (or had) connections in |
 * | `P:presence:{procs}:sweep` | string | the sweeper lock, for `heartbeatInterval` |
 * | `P:presence:events` | pub/sub | `j\|G\|<userId>\|<username>` (enter), `l\|…` (leave) |
 *
 * Keys expire `3 × ttl` after their last touch, so a prefix whose every process is gone
 * leaves nothing behind.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { ServiceUnavailableError } from '../errors.js';
import { assertValidName, isValidName } from './layer.js';
import { assertMemberId, assertPresenceMember, PresenceListeners, sortUsers } from './presence.js';
import type {
  Presence,
  PresenceJoinResult,
  PresenceLeaveResult,
  PresenceListener,
  PresenceMember,
  PresenceUser,
} from './presence.js';
import {
  assertPositiveIntegers,
  assertPrefix,
  assertRedisUrl,
  assertStatusAndClock,
  loggerOrDefault,
  RedisLifecycle,
  unavailable,
} from './redis-lifecycle.js';

/** Whether presence can reach Redis; see {@link RedisPresenceOptions.onStatus}. */
export type RedisPresenceStatus = 'ready' | 'down';

/** Options of {@link RedisPresence}. */
export interface RedisPresenceOptions {
  /**
   * Where Redis is: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * Prepended to every key and pub/sub channel; processes that should see each other
   * share it. 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
   * @default 'portcullis'
   */
  prefix?: string;
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
  /** How long one connection attempt may take, in ms. @default 5000 */
  connectTimeout?: number;
  /**
   * How long a command may wait for its reply before it fails with
   * {@link ServiceUnavailableError}, in ms. @default 5000
   */
  commandTimeout?: number;
  /** Upper bound of the reconnect delay, in ms (exponential from 50 ms, jittered). @default 2000 */
  maxReconnectDelay?: number;
  /**
   * Called when presence loses Redis (`'down'`) and when it is back (`'ready'`: both
   * connections up, events subscribed, this process's connections registered again).
   * Events published while down are not delivered here.
   */
  onStatus?: (status: RedisPresenceStatus) => void;
  /** Where connection problems and throwing listeners are logged. @default warnings and errors to stderr */
  logger?: Logger;
  /** The clock for heartbeat scores and expiry, for tests. @default Date.now */
  now?: () => number;
}

/** Loaded once per group script; `KEYS` are the group's sorted set, info hash and users hash. */
const GROUP_LUA = `
local function uidOf(info) return string.match(info, '^[^|]*|([^|]*)|') end
local function nameOf(info) return string.match(info, '^[^|]*|[^|]*|(.*)$') end
local function added(info, channel, group)
  local uid = uidOf(info)
  if redis.call('HINCRBY', KEYS[3], uid, 1) == 1 then
    redis.call('PUBLISH', channel, 'j|' .. group .. '|' .. uid .. '|' .. nameOf(info))
    return 1
  end
  return 0
end
local function removed(info, channel, group)
  local uid = uidOf(info)
  if redis.call('HINCRBY', KEYS[3], uid, -1) <= 0 then
    redis.call('HDEL', KEYS[3], uid)
    redis.call('PUBLISH', channel, 'l|' .. group .. '|' .. uid .. '|' .. nameOf(info))
    return 1
  end
  return 0
end
local function sweep(cutoff, channel, group)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)) do
    redis.call('ZREM', KEYS[1], id)
    local info = redis.call('HGET', KEYS[2], id)
    if info then
      redis.call('HDEL', KEYS[2], id)
      removed(info, channel, group)
    end
  end
end
`;

/**
 * Join and heartbeat: ARGV = now, cutoff, key ttl, channel, group, then (id, info)
 * pairs. Returns one 0/1 per pair: 1 when it was the user's first connection.
 */
const TOUCH_LUA = `${GROUP_LUA}
local now, channel, group = ARGV[1], ARGV[4], ARGV[5]
local firsts = {}
for i = 6, #ARGV - 1, 2 do
  local id, info = ARGV[i], ARGV[i + 1]
  local prev = redis.call('HGET', KEYS[2], id)
  local first = 0
  if prev ~= info then
    redis.call('HSET', KEYS[2], id, info)
    if not prev then
      first = added(info, channel, group)
    elseif uidOf(prev) ~= uidOf(info) then
      removed(prev, channel, group)
      first = added(info, channel, group)
    end
  end
  redis.call('ZADD', KEYS[1], now, id)
  firsts[#firsts + 1] = first
end
sweep(ARGV[2], channel, group)
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[3]) end
return firsts
`;

/** ARGV = id, channel, group. Returns nil, or {1 when it was the last, info}. */
const LEAVE_LUA = `${GROUP_LUA}
redis.call('ZREM', KEYS[1], ARGV[1])
local info = redis.call('HGET', KEYS[2], ARGV[1])
if not info then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
return { removed(info, ARGV[2], ARGV[3]), info }
`;

/** ARGV = cutoff, channel, group. Returns the info of every live connection. */
const LIST_LUA = `${GROUP_LUA}
sweep(ARGV[1], ARGV[2], ARGV[3])
return redis.call('HVALS', KEYS[2])
`;

/**
 * KEYS = registry, the process's group set; ARGV = process id, cutoff. Forgets the
 * process unless it heartbeat since the sweeper judged it dead.
 */
const REAP_LUA = `
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
`;

interface PresenceRedis extends Redis {
  presenceTouch(...args: [string, string, string, ...(string | number)[]]): Promise<number[]>;
  presenceLeave(
    zset: string,
    info: string,
    users: string,
    id: string,
    channel: string,
    group: string,
  ): Promise<[number, string] | null>;
  presenceList(
    zset: string,
    info: string,
    users: string,
    cutoff: number,
    channel: string,
    group: string,
  ): Promise<string[]>;
  presenceReap(
    registry: string,
    groups: string,
    processId: string,
    cutoff: number,
  ): Promise<number>;
}

/** One connection of this process, as its heartbeat re-registers it. */
interface LocalMember {
  readonly info: string;
}

const PROCESS_ID_PATTERN = /^[A-Za-z0-9\-_.]{1,64}$/;
/** Connections per heartbeat script call, so no single call holds Redis for long. */
const TOUCH_CHUNK = 500;
/** Dead processes one sweep handles; the rest wait for the next. */
const SWEEP_BATCH = 100;

/** `%` and `|` escaped, so `|` can separate fields and Lua can split without decoding. */
function escapeField(value: string): string {
  return value.replace(/[%|]/g, (c) => (c === '%' ? '%25' : '%7C'));
}

function unescapeField(value: string): string {
  return value.replace(/%(?:25|7C)/g, (s) => (s === '%25' ? '%' : '|'));
}

/** `<processId>|<userId>|<username>` → the user, or undefined when malformed. */
function parseInfo(info: string): { userId: string; username: string } | undefined {
  const [, userId, username, ...rest] = info.split('|');
  if (userId === undefined || username === undefined || rest.length > 0) return undefined;
  return { userId: unescapeField(userId), username: unescapeField(username) };
}

/**
 * A {@link Presence} over Redis, for many gateway processes sharing one Redis. See the
 * module documentation for the design and the Redis names it uses.
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

  readonly #heartbeatInterval: number;
  readonly #ttl: number;
  readonly #keyTtl: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #listeners: PresenceListeners;
  readonly #base: string;
  readonly #registry: string;
  readonly #eventsTopic: string;

  /** The command and subscriber connections, their status and reconnects. */
  readonly #redis: RedisLifecycle<PresenceRedis>;
  #connecting: Promise<this> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #beatAgain = false;
  /** group → this process's connection id → what its heartbeat re-registers */
  readonly #local = new Map<string, Map<string, LocalMember>>();

  /**
   * Checks the options; opens nothing until {@link connect}.
   *
   * @example
   * ```ts
   * const presence = new RedisPresence({ prefix: 'myapp', ttl: 20_000 });
   * await presence.connect();
   * ```
   * @throws {TypeError} when `url`, `prefix`, `processId`, `onStatus` or `now` is malformed.
   * @throws {RangeError} when a number is out of range, or `ttl` is not above `heartbeatInterval`.
   */
  constructor(options: RedisPresenceOptions = {}) {
    const {
      url = 'redis://127.0.0.1:6379',
      prefix = 'portcullis',
      processId = randomBytes(6).toString('hex'),
      heartbeatInterval = 10_000, // 10 s
      ttl = 30_000, // 30 s: two heartbeats may be missed before a process counts as dead
      connectTimeout = 5_000, // 5 s
      commandTimeout = 5_000, // 5 s
      maxReconnectDelay = 2_000, // 2 s
      onStatus,
      logger,
      now = Date.now,
    } = options;
    assertRedisUrl(url);
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
    this.#heartbeatInterval = heartbeatInterval;
    this.#ttl = ttl;
    this.#keyTtl = 3 * ttl;
    this.#logger = loggerOrDefault(logger);
    this.#now = now;
    this.#listeners = new PresenceListeners(this.#logger);
    this.#base = `${prefix}:presence`;
    this.#registry = `${this.#base}:{procs}`;
    this.#eventsTopic = `${this.#base}:events`;
    this.#redis = new RedisLifecycle<PresenceRedis>({
      url,
      connectTimeout,
      commandTimeout,
      maxReconnectDelay,
      onStatus,
      logger: this.#logger,
      label: 'presence',
      // Redis may have restarted empty, or the others may have expired this process
      // while it was cut off: subscribe, and register every live connection again.
      recover: (cmd, sub) => Promise.all([sub.subscribe(this.#eventsTopic), this.#register(cmd)]),
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

  // -- connection --------------------------------------------------------------------

  async #open(): Promise<this> {
    await this.#redis.open({
      cmd: {
        connectionName: `portcullis-presence-${this.processId}-cmd`,
        scripts: {
          presenceTouch: { lua: TOUCH_LUA, numberOfKeys: 3 },
          presenceLeave: { lua: LEAVE_LUA, numberOfKeys: 3 },
          presenceList: { lua: LIST_LUA, numberOfKeys: 3 },
          presenceReap: { lua: REAP_LUA, numberOfKeys: 2 },
        },
      },
      sub: { connectionName: `portcullis-presence-${this.processId}-sub` },
      opened: (sub) => {
        sub.on('message', (topic: string, payload: string) => {
          if (topic === this.#eventsTopic) this.#onEvent(payload);
        });
        this.#timer = setInterval(() => this.#tick(), this.#heartbeatInterval);
        this.#timer.unref();
      },
    });
    return this;
  }

  /** The command connection when it is ready. @throws ServiceUnavailableError otherwise. */
  #command(): PresenceRedis {
    const cmd = this.#redis.command(
      'RedisPresence is not connected: use `await RedisPresence.connect(options)` ' +
        'or `await presence.connect()` first',
    );
    if (cmd.status !== 'ready') throw new ServiceUnavailableError('redis');
    return cmd;
  }

  // -- names -------------------------------------------------------------------------

  #groupKeys(group: string): [string, string, string] {
    const key = `${this.#base}:group:{${group}}`;
    return [key, `${key}:info`, `${key}:users`];
  }

  #groupsOf(processId: string): string {
    return `${this.#registry}:groups:${processId}`;
  }

  #info(member: PresenceMember): string {
    return `${this.processId}|${escapeField(member.userId)}|${escapeField(member.username)}`;
  }

  // -- heartbeat and sweeper ---------------------------------------------------------

  #tick(): void {
    if (this.#redis.closed) return;
    if (this.#beating !== undefined) {
      this.#beatAgain = true;
      return;
    }
    this.#beating = this.#beat()
      .catch((err: unknown) => this.#logger.debug({ err }, 'presence: heartbeat failed'))
      .finally(() => {
        this.#beating = undefined;
        if (this.#beatAgain) {
          this.#beatAgain = false;
          this.#tick();
        }
      });
  }

  async #beat(): Promise<void> {
    const cmd = this.#redis.cmd;
    if (cmd?.status !== 'ready') return; // the reconnect's recover registers
    await this.#register(cmd);
    await this.#sweep(cmd);
  }

  /**
   * Stamps this process in the registry and renews (or re-adds) every local
   * connection. Every command is written before the first await, so a `leave()` called
   * after this started reaches Redis after these touches, never before.
   */
  #register(cmd: PresenceRedis): Promise<unknown> {
    const now = this.#now();
    const work: Promise<unknown>[] = [
      cmd.zadd(this.#registry, now, this.processId),
      cmd.pexpire(this.#registry, this.#keyTtl),
    ];
    const groups = [...this.#local.keys()];
    if (groups.length > 0) {
      const key = this.#groupsOf(this.processId);
      work.push(cmd.sadd(key, ...groups), cmd.pexpire(key, this.#keyTtl));
    }
    for (const [group, members] of this.#local) {
      let batch: string[] = [];
      for (const [id, { info }] of members) {
        batch.push(id, info);
        if (batch.length >= 2 * TOUCH_CHUNK) {
          work.push(this.#touch(cmd, group, now, batch));
          batch = [];
        }
      }
      if (batch.length > 0) work.push(this.#touch(cmd, group, now, batch));
    }
    return Promise.all(work);
  }

  #touch(cmd: PresenceRedis, group: string, now: number, pairs: string[]): Promise<number[]> {
    return cmd.presenceTouch(
      ...this.#groupKeys(group),
      now,
      now - this.#ttl,
      this.#keyTtl,
      this.#eventsTopic,
      group,
      ...pairs,
    );
  }

  /** Expires the groups of processes that stopped heartbeating; one sweeper at a time. */
  async #sweep(cmd: PresenceRedis): Promise<void> {
    const now = this.#now();
    const cutoff = now - this.#ttl;
    const dead = (
      await cmd.zrangebyscore(this.#registry, '-inf', `(${cutoff}`, 'LIMIT', 0, SWEEP_BATCH)
    ).filter((processId) => processId !== this.processId);
    if (dead.length === 0) return;
    // Sweeping is idempotent; the lock only spares Redis N processes doing it at once.
    const lock = `${this.#registry}:sweep`;
    if ((await cmd.set(lock, this.processId, 'PX', this.#heartbeatInterval, 'NX')) === null) {
      return;
    }
    for (const processId of dead) {
      const groupsKey = this.#groupsOf(processId);
      const groups = (await cmd.smembers(groupsKey)).filter((group) => isValidName(group));
      await Promise.all(groups.map((group) => this.#touch(cmd, group, now, [])));
      await cmd.presenceReap(this.#registry, groupsKey, processId, cutoff);
    }
  }

  // -- events ------------------------------------------------------------------------

  #onEvent(payload: string): void {
    const [kind, group, userId, username, ...rest] = payload.split('|');
    if (
      (kind !== 'j' && kind !== 'l') ||
      !isValidName(group) ||
      userId === undefined ||
      username === undefined ||
      rest.length > 0
    ) {
      this.#logger.warn('presence: dropped a malformed event');
      return;
    }
    this.#listeners.emit({
      group,
      type: kind === 'j' ? 'join' : 'leave',
      userId: unescapeField(userId),
      username: unescapeField(username),
    });
  }

  // -- Presence ----------------------------------------------------------------------

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
    let members = this.#local.get(group);
    if (members === undefined) {
      members = new Map();
      this.#local.set(group, members);
    }
    const previous = members.get(member.id);
    const mine: LocalMember = { info: this.#info(member) };
    members.set(member.id, mine);
    // Written in this order on one connection: the group set, which the sweeper reads
    // to find this group should this process die, is updated before the join.
    const registered = cmd.sadd(this.#groupsOf(this.processId), group);
    const touched = this.#touch(cmd, group, this.#now(), [member.id, mine.info]);
    try {
      const [, firsts] = await Promise.all([registered, touched]);
      return { first: firsts[0] === 1 };
    } catch (err) {
      if (this.#local.get(group)?.get(member.id) === mine) {
        if (previous === undefined) this.#forget(group, member.id);
        else members.set(member.id, previous);
      }
      throw unavailable(err);
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
    const emptied = this.#forget(group, memberId);
    const cmd = this.#command();
    const leaving = cmd.presenceLeave(
      ...this.#groupKeys(group),
      memberId,
      this.#eventsTopic,
      group,
    );
    if (emptied) {
      cmd
        .srem(this.#groupsOf(this.processId), group)
        .catch((err: unknown) => this.#logger.debug({ err, group }, 'presence: srem failed'));
    }
    let reply: [number, string] | null;
    try {
      reply = await leaving;
    } catch (err) {
      throw unavailable(err);
    }
    if (reply === null) return undefined;
    const user = parseInfo(reply[1]);
    if (user === undefined) return undefined;
    return { last: reply[0] === 1, ...user };
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
        ...this.#groupKeys(group),
        this.#now() - this.#ttl,
        this.#eventsTopic,
        group,
      );
    } catch (err) {
      throw unavailable(err);
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
    if (!this.#redis.markClosed()) return;
    clearInterval(this.#timer);
    const cmd = this.#redis.cmd;
    if (cmd?.status === 'ready') {
      const work: Promise<unknown>[] = [];
      for (const [group, members] of this.#local) {
        for (const id of members.keys()) {
          work.push(cmd.presenceLeave(...this.#groupKeys(group), id, this.#eventsTopic, group));
        }
      }
      work.push(cmd.zrem(this.#registry, this.processId), cmd.del(this.#groupsOf(this.processId)));
      await Promise.allSettled(work);
    }
    this.#local.clear();
    this.#listeners.clear();
    await this.#beating;
    await this.#redis.disconnect();
  }

  /** Drops a local connection; true when it was this process's last in the group. */
  #forget(group: string, memberId: string): boolean {
    const members = this.#local.get(group);
    if (members === undefined || !members.delete(memberId)) return false;
    if (members.size > 0) return false;
    this.#local.delete(group);
    return true;
  }
}
