/**
 * Presence heartbeats and the sweeper.
 *
 * - **Heartbeats.** Every `heartbeatInterval` a process re-touches each of its own live
 *   connections (their score becomes the current time, one script call per group) and
 *   stamps itself in the process registry. Touching re-adds a connection that is
 *   missing, so the heartbeat also re-registers everything after Redis restarted empty
 *   or after other processes expired this one while it was cut off.
 * - **Sweeper.** For groups nobody touches, every `heartbeatInterval` (at most one
 *   process at a time through a short lock) finds dead processes in the registry and
 *   expires their groups, then forgets the process unless it heartbeat meanwhile. Every
 *   step is idempotent, so a racing second sweeper or a process coming back to life at
 *   the wrong moment changes nothing but timing.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { isValidName } from '../layer.js';
import type { RedisLifecycle } from './lifecycle.js';
import type { PresenceNames } from './names.js';
import type { PresenceRedis } from './presence-scripts.js';

/** Connections per heartbeat script call, so no single call holds Redis for long. */
const TOUCH_CHUNK = 500;
/** Dead processes one sweep handles; the rest wait for the next. */
const SWEEP_BATCH = 100;

/**
 * One connection of this process, as its heartbeat re-registers it. An object, so that
 * a failed join can tell whether its entry is still the one it made.
 * @internal
 */
export interface LocalConnection {
  readonly info: string;
}

/** @internal */
export interface PresenceHeartbeatOptions {
  readonly processId: string;
  readonly names: PresenceNames;
  readonly redis: Pick<RedisLifecycle<PresenceRedis>, 'usable' | 'closed' | 'failure'>;
  /** ms between heartbeats (and sweeps) */
  readonly heartbeatInterval: number;
  /** ms a connection lives without a heartbeat */
  readonly ttl: number;
  readonly now: () => number;
  readonly logger: Logger;
}

/** @internal */
export class PresenceHeartbeat {
  readonly #options: PresenceHeartbeatOptions;
  /** Keys expire this long after their last touch, so an abandoned prefix empties itself. */
  readonly #keyTtl: number;
  /** group → this process's connection id → what its heartbeat re-registers */
  readonly #local = new Map<string, Map<string, LocalConnection>>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #beatAgain = false;

  constructor(options: PresenceHeartbeatOptions) {
    this.#options = options;
    this.#keyTtl = 3 * options.ttl;
  }

  /** This process's connections, by group. */
  get local(): ReadonlyMap<string, ReadonlyMap<string, LocalConnection>> {
    return this.#local;
  }

  /** Keeps a connection alive from now on; returns the entry it replaced, if any. */
  remember(group: string, id: string, connection: LocalConnection): LocalConnection | undefined {
    let members = this.#local.get(group);
    if (members === undefined) {
      members = new Map();
      this.#local.set(group, members);
    }
    const previous = members.get(id);
    members.set(id, connection);
    return previous;
  }

  /**
   * Undoes {@link remember} after a failed join, unless another call replaced the
   * entry meanwhile.
   */
  undo(
    group: string,
    id: string,
    made: LocalConnection,
    previous: LocalConnection | undefined,
  ): void {
    if (this.#local.get(group)?.get(id) !== made) return;
    if (previous === undefined) this.forget(group, id);
    else this.#local.get(group)!.set(id, previous);
  }

  /** Stops renewing a connection; true when it was this process's last in the group. */
  forget(group: string, id: string): boolean {
    const members = this.#local.get(group);
    if (members === undefined || !members.delete(id)) return false;
    if (members.size > 0) return false;
    this.#local.delete(group);
    return true;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#options.heartbeatInterval);
    this.#timer.unref();
  }

  /** Stops the timer, forgets every connection and waits for a heartbeat under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#local.clear();
    await this.#beating;
  }

  /**
   * Stamps this process in the registry and renews (or re-adds) every local
   * connection. Every command is written before the first await, so a `leave()` called
   * after this started reaches Redis after these touches, never before.
   */
  register(cmd: PresenceRedis): Promise<unknown> {
    const { processId, names } = this.#options;
    const now = this.#options.now();
    const work: Promise<unknown>[] = [
      cmd.zadd(names.registry, now, processId),
      cmd.pexpire(names.registry, this.#keyTtl),
    ];
    const groups = [...this.#local.keys()];
    if (groups.length > 0) {
      const key = names.groupsOf(processId);
      work.push(cmd.sadd(key, ...groups), cmd.pexpire(key, this.#keyTtl));
    }
    for (const [group, members] of this.#local) {
      let batch: string[] = [];
      for (const [id, { info }] of members) {
        batch.push(id, info);
        if (batch.length >= 2 * TOUCH_CHUNK) {
          work.push(this.touch(cmd, group, now, batch));
          batch = [];
        }
      }
      if (batch.length > 0) work.push(this.touch(cmd, group, now, batch));
    }
    return Promise.all(work);
  }

  /**
   * Runs the touch script on a group: (re)adds the `(id, info)` pairs with score `now`
   * and expires connections older than `ttl`. Returns one 0/1 per pair: 1 when it was
   * the user's first connection in the group.
   */
  touch(cmd: PresenceRedis, group: string, now: number, pairs: string[]): Promise<number[]> {
    const { names, ttl } = this.#options;
    return cmd.presenceTouch(
      ...names.groupKeys(group),
      now,
      now - ttl,
      this.#keyTtl,
      names.events,
      group,
      ...pairs,
    );
  }

  #tick(): void {
    if (this.#options.redis.closed) return;
    if (this.#beating !== undefined) {
      this.#beatAgain = true;
      return;
    }
    this.#beating = this.#beat()
      .catch((err: unknown) => {
        this.#options.redis.failure(err);
        this.#options.logger.debug({ err }, 'presence: heartbeat failed');
      })
      .finally(() => {
        this.#beating = undefined;
        if (this.#beatAgain) {
          this.#beatAgain = false;
          this.#tick();
        }
      });
  }

  async #beat(): Promise<void> {
    const cmd = this.#options.redis.usable;
    if (cmd === undefined) return; // the recovery registers everything
    await this.register(cmd);
    await this.#sweep(cmd);
  }

  /** Expires the groups of processes that stopped heartbeating; one sweeper at a time. */
  async #sweep(cmd: PresenceRedis): Promise<void> {
    const { processId, names, ttl, heartbeatInterval } = this.#options;
    const now = this.#options.now();
    const cutoff = now - ttl;
    const dead = (
      await cmd.zrangebyscore(names.registry, '-inf', `(${cutoff}`, 'LIMIT', 0, SWEEP_BATCH)
    ).filter((id) => id !== processId);
    if (dead.length === 0) return;
    // Sweeping is idempotent; the lock only spares Redis N processes doing it at once.
    if ((await cmd.set(names.sweepLock, processId, 'PX', heartbeatInterval, 'NX')) === null) {
      return;
    }
    for (const id of dead) {
      const groupsKey = names.groupsOf(id);
      const groups = (await cmd.smembers(groupsKey)).filter((group) => isValidName(group));
      await Promise.all(groups.map((group) => this.touch(cmd, group, now, [])));
      await cmd.presenceReap(names.registry, groupsKey, id, cutoff);
    }
  }
}
