/**
 * Every Redis name Portcullis uses, all under one prefix (`P`, the `prefix` option;
 * SPEC §12), so deployments sharing one Redis never see each other's traffic. Names
 * that one command or script uses together carry the same `{…}` hash tag, so on Redis
 * Cluster they share one slot; a group's pub/sub channel carries its group's tag too,
 * so with sharded pub/sub its messages stay within the shard that owns the group.
 *
 * The channel layer ({@link LayerNames}):
 *
 * | name | type | holds |
 * |---|---|---|
 * | `P:group:{G}` | sorted set | every member channel of group `G`, scored by join time (ms) |
 * | `P:group:{G}:queued` | sorted set | the members without a receiver; a group send pushes to their lists |
 * | `P:channel:C` | list | queued messages of channel `C`, each `<expires-at ms> <json>` |
 * | `P:g:{G}` | pub/sub | one message per group send: the message's JSON (an object), or a batch's (an array of them) |
 * | `P:proc:<processId>` | pub/sub | direct sends to one process's channels, and membership requests |
 *
 * Presence ({@link PresenceNames}):
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
 * @internal
 * @module
 */

/** `<prefix>.<processId>.<n>`: the process id of a channel from some layer's `newChannel()`. */
const OWNER_PATTERN = /\.([0-9a-f]{12})\.[0-9a-z]+$/;

/**
 * The process id in a channel name made by some process's `newChannel()`, or undefined
 * for other names (worker channels such as `thumbnails`).
 * @internal
 */
export function ownerOf(channel: string): string | undefined {
  return OWNER_PATTERN.exec(channel)?.[1];
}

/**
 * The layer's key and channel names under one prefix.
 * @internal
 */
export class LayerNames {
  readonly #prefix: string;
  readonly #groupTopicStart: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
    this.#groupTopicStart = `${prefix}:g:{`;
  }

  /** Sorted set of a group's members. */
  groupKey(group: string): string {
    return `${this.#prefix}:group:{${group}}`;
  }

  /** Sorted set of a group's members without a receiver (same slot as {@link groupKey}). */
  queuedKey(group: string): string {
    return `${this.#prefix}:group:{${group}}:queued`;
  }

  /** List of a channel's queued messages. */
  listKey(channel: string): string {
    return `${this.#prefix}:channel:${channel}`;
  }

  /** Pub/sub channel of a group's sends. */
  groupTopic(group: string): string {
    return `${this.#groupTopicStart}${group}}`;
  }

  /** The group a {@link groupTopic} names, or undefined for any other channel. */
  groupOfTopic(topic: string): string | undefined {
    return topic.startsWith(this.#groupTopicStart) && topic.endsWith('}')
      ? topic.slice(this.#groupTopicStart.length, -1)
      : undefined;
  }

  /** Pub/sub channel of one process: direct sends and membership requests. */
  processTopic(processId: string): string {
    return `${this.#prefix}:proc:${processId}`;
  }
}

/**
 * Presence's key and channel names under one prefix.
 * @internal
 */
export class PresenceNames {
  /** The sorted set of live processes; its `{procs}` tag keeps it with their group sets. */
  readonly registry: string;
  /** The sweeper lock. */
  readonly sweepLock: string;
  /** The one pub/sub channel of every enter and leave under the prefix. */
  readonly events: string;
  readonly #base: string;

  constructor(prefix: string) {
    this.#base = `${prefix}:presence`;
    this.registry = `${this.#base}:{procs}`;
    this.sweepLock = `${this.registry}:sweep`;
    this.events = `${this.#base}:events`;
  }

  /** A group's sorted set, info hash and users hash: the keys of every group script. */
  groupKeys(group: string): [string, string, string] {
    const key = `${this.#base}:group:{${group}}`;
    return [key, `${key}:info`, `${key}:users`];
  }

  /** The set of groups a process has connections in. */
  groupsOf(processId: string): string {
    return `${this.registry}:groups:${processId}`;
  }
}
