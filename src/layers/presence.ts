/**
 * Presence: who is in a group, across processes, with enter and leave events
 * (issue 5, item 3; MultiChat's `msg_type` 4 and 5 notices in SPEC §7).
 *
 * Presence counts **users**, not sockets. A user with two tabs open in a room is one
 * member with two connections: only their first connection entering the group makes
 * an enter event (and `join()` answers `{ first: true }`), and only their last
 * connection going makes a leave event (`leave()` answers `{ last: true }`). So a
 * second tab, a reload or a reconnect to another process never shows the room a
 * spurious "left / entered" pair.
 *
 * A member is one connection: `id` is the connection's channel name (or any id unique
 * within the group), `userId` and `username` say whose it is. Group names follow the
 * channel layer's rule (SPEC §2).
 *
 * Two implementations share one contract and one test suite:
 *
 * - {@link MemoryPresence}: one process, plain maps; events come a microtask after the
 *   change.
 * - `RedisPresence` (`./redis/presence.js`): many processes over Redis; each process
 *   heartbeats its own members, and the members of a process that stops heartbeating
 *   (killed, frozen, cut off) are removed by the others, with leave events.
 *
 * @module
 */
import type { Logger } from 'pino';
import { ServiceUnavailableError } from '../errors.js';
import { defaultLogger } from '../logging.js';
import { assertValidName } from './layer.js';

/** One connection in a group, as passed to {@link Presence.join}. */
export interface PresenceMember {
  /** The connection: its channel name, or another id unique within the group. */
  readonly id: string;
  /** Whose connection it is; connections with the same `userId` are one member. */
  readonly userId: string;
  /** The name shown in enter and leave notices. */
  readonly username: string;
}

/** What {@link Presence.join} tells the caller. */
export interface PresenceJoinResult {
  /** The user had no other connection in the group: an enter notice is due. */
  readonly first: boolean;
}

/** What {@link Presence.leave} tells the caller about a connection that was in the group. */
export interface PresenceLeaveResult {
  /** That was the user's last connection in the group: a leave notice is due. */
  readonly last: boolean;
  readonly userId: string;
  readonly username: string;
}

/** One user in a group, from {@link Presence.members}. */
export interface PresenceUser {
  readonly userId: string;
  readonly username: string;
  /** The user's connections in the group, on every process; at least 1. */
  readonly connections: number;
}

/** A user entered (`'join'`) or left (`'leave'`) a group, on any process. */
export interface PresenceEvent {
  readonly group: string;
  readonly type: 'join' | 'leave';
  readonly userId: string;
  readonly username: string;
}

/** Receives {@link PresenceEvent}s; see {@link Presence.onChange}. */
export type PresenceListener = (event: PresenceEvent) => void;

/**
 * Who is in which group. Every method that takes a group checks its name (SPEC §2).
 *
 * @example
 * ```ts
 * // in a consumer
 * const { first } = await presence.join(room, { id: this.channel, userId, username });
 * const left = await presence.leave(room, this.channel);
 * const stop = presence.onChange((event) => {
 *   if (event.type === 'join') void layer.groupSend(event.group, enterNotice(event));
 * });
 * ```
 */
export interface Presence {
  /**
   * Adds a connection to a group. Joining again with the same `id` (and user) only
   * renews it and answers `{ first: false }`. A user whose connection on a dead
   * process has not expired yet is still present, so their new connection elsewhere is
   * not `first` either: the group saw no leave, so it needs no enter.
   *
   * @throws {InvalidChannelNameError} for a bad group name.
   * @throws {TypeError} for a malformed member.
   * @throws {ServiceUnavailableError} when the backing service is unreachable; nothing joined.
   */
  join(group: string, member: PresenceMember): Promise<PresenceJoinResult>;
  /**
   * Removes a connection from a group. `undefined` when it was not there.
   *
   * @throws {InvalidChannelNameError} for a bad group name.
   * @throws {ServiceUnavailableError} when the backing service is unreachable.
   */
  leave(group: string, memberId: string): Promise<PresenceLeaveResult | undefined>;
  /**
   * The users in a group with their connection counts, on every process, sorted by
   * `username` then `userId`.
   *
   * @throws {InvalidChannelNameError} for a bad group name.
   * @throws {ServiceUnavailableError} when the backing service is unreachable.
   */
  members(group: string): Promise<PresenceUser[]>;
  /**
   * Calls `listener` for every user entering or leaving any group on any process,
   * including the users of a dead process whose members expired. A group's events
   * arrive in the order they happened; events of different groups may interleave
   * differently (on a Redis Cluster they come from different nodes). Returns a function
   * that stops it. A throwing listener is logged and does not stop the others.
   *
   * @throws {TypeError} when `listener` is not a function.
   */
  onChange(listener: PresenceListener): () => void;
  /** Releases timers and connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Checks a member passed to {@link Presence.join}.
 * @internal shared by the implementations
 * @throws {TypeError} unless `member` is a {@link PresenceMember}.
 */
export function assertPresenceMember(member: unknown): asserts member is PresenceMember {
  const { id, userId, username } = (member ?? {}) as Partial<Record<string, unknown>>;
  if (
    typeof member !== 'object' ||
    typeof id !== 'string' ||
    id === '' ||
    typeof userId !== 'string' ||
    userId === '' ||
    typeof username !== 'string'
  ) {
    throw new TypeError(
      'A presence member must be an object with a non-empty string "id", ' +
        'a non-empty string "userId" and a string "username"',
    );
  }
}

/**
 * Checks a member id passed to {@link Presence.leave}.
 * @internal shared by the implementations
 * @throws {TypeError} unless `memberId` is a non-empty string.
 */
export function assertMemberId(memberId: unknown): asserts memberId is string {
  if (typeof memberId !== 'string' || memberId === '') {
    throw new TypeError('A presence member id must be a non-empty string');
  }
}

/**
 * Sorts users for {@link Presence.members}, so both implementations answer alike.
 * @internal
 */
export function sortUsers(users: PresenceUser[]): PresenceUser[] {
  return users.sort((a, b) => compare(a.username, b.username) || compare(a.userId, b.userId));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

let fallbackLogger: Logger | undefined;

/**
 * The listeners of one presence instance.
 * @internal shared by the implementations
 */
export class PresenceListeners {
  readonly #listeners = new Set<PresenceListener>();
  readonly #logger: Logger | undefined;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** @throws {TypeError} when `listener` is not a function. */
  add(listener: PresenceListener): () => void {
    if (typeof listener !== 'function') {
      throw new TypeError('A presence listener must be a function');
    }
    // A wrapper, so adding one function twice makes two subscriptions, each removable.
    const entry: PresenceListener = (event) => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(event: PresenceEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (err) {
        const logger = this.#logger ?? (fallbackLogger ??= defaultLogger());
        logger.error({ err, group: event.group }, 'presence: a listener threw');
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/** Options of {@link MemoryPresence}. */
export interface MemoryPresenceOptions {
  /** Where a throwing listener is reported. @default warnings and errors to stderr */
  logger?: Logger;
}

interface Connection {
  readonly userId: string;
  readonly username: string;
}

/**
 * A {@link Presence} inside one process: for a single gateway, and for tests.
 *
 * @example
 * ```ts
 * const presence = new MemoryPresence();
 * const { first } = await presence.join('room-1', { id: channel, userId: '7', username: 'ada' });
 * await presence.members('room-1'); // [{ userId: '7', username: 'ada', connections: 1 }]
 * ```
 */
export class MemoryPresence implements Presence {
  readonly #listeners: PresenceListeners;
  /** group → member id → whose connection */
  readonly #groups = new Map<string, Map<string, Connection>>();
  /** group → user id → connections */
  readonly #counts = new Map<string, Map<string, number>>();
  #closed = false;

  /** @throws {TypeError} when `logger` is not an object. */
  constructor(options: MemoryPresenceOptions = {}) {
    const { logger } = options;
    if (logger !== undefined && (typeof logger !== 'object' || logger === null)) {
      throw new TypeError('The "logger" option must be a pino logger');
    }
    this.#listeners = new PresenceListeners(logger);
  }

  /**
   * Adds a connection to a group; see {@link Presence.join}.
   *
   * @example
   * ```ts
   * const { first } = await presence.join('room-1', { id: channel, userId: '7', username: 'ada' });
   * ```
   * @throws {InvalidChannelNameError} for a bad group name. @throws {TypeError} for a
   * malformed member. @throws {ServiceUnavailableError} after {@link close}.
   */
  async join(group: string, member: PresenceMember): Promise<PresenceJoinResult> {
    assertValidName('group', group);
    assertPresenceMember(member);
    this.#assertOpen();
    const { id, userId, username } = member;
    let members = this.#groups.get(group);
    if (members === undefined) {
      members = new Map();
      this.#groups.set(group, members);
    }
    const previous = members.get(id);
    members.set(id, { userId, username });
    if (previous?.userId === userId) return { first: false };
    // An id reused by another user: the previous user's connection is gone.
    if (previous !== undefined) this.#release(group, previous);
    const counts = this.#countsOf(group);
    const connections = (counts.get(userId) ?? 0) + 1;
    counts.set(userId, connections);
    if (connections > 1) return { first: false };
    this.#emit({ group, type: 'join', userId, username });
    return { first: true };
  }

  /**
   * Removes a connection from a group; see {@link Presence.leave}.
   *
   * @example
   * ```ts
   * const left = await presence.leave('room-1', channel);
   * if (left?.last) notify(left.username);
   * ```
   * @throws {InvalidChannelNameError} for a bad group name. @throws {TypeError} for a
   * malformed id. @throws {ServiceUnavailableError} after {@link close}.
   */
  async leave(group: string, memberId: string): Promise<PresenceLeaveResult | undefined> {
    assertValidName('group', group);
    assertMemberId(memberId);
    this.#assertOpen();
    const members = this.#groups.get(group);
    const connection = members?.get(memberId);
    if (members === undefined || connection === undefined) return undefined;
    members.delete(memberId);
    if (members.size === 0) this.#groups.delete(group);
    const last = this.#release(group, connection);
    return { last, userId: connection.userId, username: connection.username };
  }

  /**
   * The users in a group; see {@link Presence.members}.
   *
   * @example
   * ```ts
   * for (const { username, connections } of await presence.members('room-1')) { ... }
   * ```
   * @throws {InvalidChannelNameError} for a bad group name.
   * @throws {ServiceUnavailableError} after {@link close}.
   */
  async members(group: string): Promise<PresenceUser[]> {
    assertValidName('group', group);
    this.#assertOpen();
    const users = new Map<string, { username: string; connections: number }>();
    for (const { userId, username } of this.#groups.get(group)?.values() ?? []) {
      const user = users.get(userId);
      if (user === undefined) users.set(userId, { username, connections: 1 });
      else user.connections += 1;
    }
    return sortUsers(
      [...users].map(([userId, { username, connections }]) => ({
        userId,
        username,
        connections,
      })),
    );
  }

  /**
   * Listens to enter and leave events; see {@link Presence.onChange}.
   *
   * @example
   * ```ts
   * const stop = presence.onChange(({ group, type, username }) => log(group, type, username));
   * ```
   * @throws {TypeError} when `listener` is not a function.
   */
  onChange(listener: PresenceListener): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Forgets every member and listener, without events. Idempotent.
   *
   * @example
   * ```ts
   * await presence.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#groups.clear();
    this.#counts.clear();
    this.#listeners.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ServiceUnavailableError('presence');
  }

  #countsOf(group: string): Map<string, number> {
    let counts = this.#counts.get(group);
    if (counts === undefined) {
      counts = new Map();
      this.#counts.set(group, counts);
    }
    return counts;
  }

  /** One connection of a user is gone; true (and a leave event) when it was the last. */
  #release(group: string, { userId, username }: Connection): boolean {
    const counts = this.#countsOf(group);
    const connections = (counts.get(userId) ?? 1) - 1;
    if (connections > 0) {
      counts.set(userId, connections);
      return false;
    }
    counts.delete(userId);
    if (counts.size === 0) this.#counts.delete(group);
    this.#emit({ group, type: 'leave', userId, username });
    return true;
  }

  #emit(event: PresenceEvent): void {
    // After the change and outside the caller's stack, as a Redis-backed presence would:
    // a listener that calls back into presence never sees a half-made change.
    queueMicrotask(() => {
      if (!this.#closed) this.#listeners.emit(event);
    });
  }
}
