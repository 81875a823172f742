/**
 * Group memberships: this process's view (which attached channel is in which group,
 * which of its unattached channels are queued members) and the registry in Redis that
 * every process reads (`groupMembers()`, and the queued members a group send pushes to).
 *
 * A membership lives `groupExpiry` unless renewed by another `groupAdd`; expired
 * members are removed from Redis on joins and skipped everywhere else. After a
 * reconnect this process registers its memberships again, in case Redis came back
 * empty (a restart without persistence).
 *
 * @internal
 * @module
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './clients.js';
import type { LayerNames } from './names.js';
import type { Subscriptions } from './subscriptions.js';

/** @internal */
export interface MembershipOptions {
  readonly names: LayerNames;
  readonly subscriptions: Subscriptions;
  /** ms; 0: forever */
  readonly groupExpiry: number;
  readonly now: () => number;
}

/** @internal */
export class Membership {
  readonly #names: LayerNames;
  readonly #subscriptions: Subscriptions;
  readonly #groupExpiry: number;
  readonly #now: () => number;
  /** group → attached local channel → joined at */
  readonly #local = new Map<string, Map<string, number>>();
  /** attached local channel → its groups, so detaching does not scan every group */
  readonly #memberOf = new Map<string, Set<string>>();
  /** this process's unattached channel → group → joined at (queued memberships) */
  readonly #queuedOf = new Map<string, Map<string, number>>();

  constructor(options: MembershipOptions) {
    this.#names = options.names;
    this.#subscriptions = options.subscriptions;
    this.#groupExpiry = options.groupExpiry;
    this.#now = options.now;
  }

  /** The attached local members of a group with their join times, if any. */
  localMembers(group: string): ReadonlyMap<string, number> | undefined {
    return this.#local.get(group);
  }

  /** Whether an attached local channel is in a group (joined at `joinedAt`, when given). */
  isLocalMember(group: string, channel: string, joinedAt?: number): boolean {
    const at = this.#local.get(group)?.get(channel);
    return at !== undefined && (joinedAt === undefined || at === joinedAt);
  }

  /** Joins time before which a membership has expired; -Infinity when they never do. */
  expiredBefore(): number {
    return this.#groupExpiry > 0 ? this.#now() - this.#groupExpiry : -Infinity;
  }

  /** Records an attached local member; the caller subscribes to the group. */
  addLocal(group: string, channel: string, joinedAt: number): void {
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

  /** Forgets an attached local member; the group's subscription goes with its last one. */
  dropLocal(group: string, channel: string): void {
    const groups = this.#memberOf.get(channel);
    groups?.delete(group);
    if (groups?.size === 0) this.#memberOf.delete(channel);
    const members = this.#local.get(group);
    if (members === undefined || !members.delete(channel)) return;
    if (members.size > 0) return;
    this.#local.delete(group);
    this.#subscriptions.release(this.#names.groupTopic(group));
  }

  /** Forgets every local membership of a channel; returns the groups it was in. */
  dropChannel(channel: string): string[] {
    const groups = [...(this.#memberOf.get(channel) ?? [])];
    for (const group of groups) this.dropLocal(group, channel);
    return groups;
  }

  /** Records one of this process's unattached channels as a queued member. */
  addQueued(group: string, channel: string, joinedAt: number): void {
    let groups = this.#queuedOf.get(channel);
    if (groups === undefined) {
      groups = new Map();
      this.#queuedOf.set(channel, groups);
    }
    groups.set(group, joinedAt);
  }

  dropQueued(group: string, channel: string): void {
    const groups = this.#queuedOf.get(channel);
    groups?.delete(group);
    if (groups?.size === 0) this.#queuedOf.delete(channel);
  }

  /** A queued channel's groups (with join times), forgotten here: it got a receiver. */
  takeQueued(channel: string): Map<string, number> | undefined {
    const groups = this.#queuedOf.get(channel);
    this.#queuedOf.delete(channel);
    return groups;
  }

  /**
   * Records a membership in Redis: the group set, and the queued set when `queued`.
   * One group's keys share a slot, so this is one pipeline on Redis Cluster too.
   * @throws what Redis throws.
   */
  async register(
    cmd: RedisClient,
    group: string,
    channel: string,
    joinedAt: number,
    queued: boolean,
  ): Promise<void> {
    const batch = cmd.pipeline();
    for (const key of this.#keys(group, queued)) {
      batch.zadd(key, joinedAt, channel);
      // Expired members are removed here, on joins, rather than on every send.
      if (this.#groupExpiry > 0) batch.zremrangebyscore(key, '-inf', joinedAt - this.#groupExpiry);
    }
    this.#expire(batch, group, queued);
    await execChecked(batch);
  }

  /** Removes a channel from a group in Redis, queued or not. @throws what Redis throws. */
  async unregister(cmd: RedisClient, group: string, channel: string): Promise<void> {
    await execChecked(
      cmd
        .pipeline()
        .zrem(this.#names.groupKey(group), channel)
        .zrem(this.#names.queuedKey(group), channel),
    );
  }

  /** Removes a detached channel from its groups in Redis: one command per group (each its own slot). */
  async unregisterAll(cmd: RedisClient, groups: readonly string[], channel: string): Promise<void> {
    await Promise.all(groups.map((group) => cmd.zrem(this.#names.groupKey(group), channel)));
  }

  /** A queued member got a receiver here: it leaves the group's queued set. */
  async unqueue(cmd: RedisClient, group: string, channel: string): Promise<void> {
    await cmd.zrem(this.#names.queuedKey(group), channel);
  }

  /**
   * Registers every membership of this process again, after a reconnect: Redis may
   * have come back empty. One pipeline per group, so each stays within one slot.
   */
  async reregister(cmd: RedisClient): Promise<void> {
    const batches = new Map<string, ChainableCommander>();
    const batchOf = (group: string): ChainableCommander => {
      let batch = batches.get(group);
      if (batch === undefined) {
        batch = cmd.pipeline();
        batches.set(group, batch);
      }
      return batch;
    };
    for (const [group, members] of this.#local) {
      const batch = batchOf(group);
      for (const [channel, joinedAt] of members)
        batch.zadd(this.#names.groupKey(group), joinedAt, channel);
      this.#expire(batch, group, false);
    }
    for (const [channel, groups] of this.#queuedOf) {
      for (const [group, joinedAt] of groups) {
        const batch = batchOf(group);
        batch.zadd(this.#names.groupKey(group), joinedAt, channel);
        batch.zadd(this.#names.queuedKey(group), joinedAt, channel);
        this.#expire(batch, group, true);
      }
    }
    await Promise.all([...batches.values()].map((batch) => execChecked(batch)));
  }

  /** The unexpired members of a group across every process (`queued`: only those without a receiver). */
  members(cmd: RedisClient, group: string, queued: boolean): Promise<string[]> {
    const key = queued ? this.#names.queuedKey(group) : this.#names.groupKey(group);
    return this.#groupExpiry > 0
      ? cmd.zrangebyscore(key, `(${this.#now() - this.#groupExpiry}`, '+inf')
      : cmd.zrange(key, 0, '-1');
  }

  clear(): void {
    this.#local.clear();
    this.#memberOf.clear();
    this.#queuedOf.clear();
  }

  #keys(group: string, queued: boolean): string[] {
    return queued
      ? [this.#names.groupKey(group), this.#names.queuedKey(group)]
      : [this.#names.groupKey(group)];
  }

  #expire(batch: ChainableCommander, group: string, queued: boolean): void {
    if (this.#groupExpiry === 0) return;
    for (const key of this.#keys(group, queued)) batch.pexpire(key, this.#groupExpiry);
  }
}

/** Runs a pipeline; rejects with the first command's error (ioredis reports them per command). */
async function execChecked(batch: ChainableCommander): Promise<void> {
  const results = await batch.exec();
  if (results === null) throw new Error('pipeline aborted');
  for (const [err] of results) if (err !== null) throw err;
}
