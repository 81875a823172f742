/**
 * Presence's Lua scripts on the command connection. Every group script starts with
 * `presence-group.lua`'s functions and takes the group's three keys (one slot).
 *
 * @internal
 * @module
 */
import type { RedisClient, Scripts } from './clients.js';
import { loadLua } from './scripts.js';

/**
 * The command connection with presence's scripts defined on it (EVALSHA, EVAL on NOSCRIPT).
 * @internal
 */
export type PresenceRedis = RedisClient & PresenceScriptCommands;

/** The commands {@link presenceScripts} defines. */
interface PresenceScriptCommands {
  /** `presence-touch.lua`: join and heartbeat. */
  presenceTouch(...args: [string, string, string, ...(string | number)[]]): Promise<number[]>;
  /** `presence-leave.lua` */
  presenceLeave(
    zset: string,
    info: string,
    users: string,
    id: string,
    channel: string,
    group: string,
  ): Promise<[number, string] | null>;
  /** `presence-list.lua` */
  presenceList(
    zset: string,
    info: string,
    users: string,
    cutoff: number,
    channel: string,
    group: string,
  ): Promise<string[]>;
  /** `presence-reap.lua` */
  presenceReap(
    registry: string,
    groups: string,
    processId: string,
    cutoff: number,
  ): Promise<number>;
}

/**
 * The `scripts` option of the command connection.
 * @internal
 */
export async function presenceScripts(): Promise<Scripts> {
  const group = ['presence-group'];
  const [touch, leave, list, reap] = await Promise.all([
    loadLua('presence-touch', group),
    loadLua('presence-leave', group),
    loadLua('presence-list', group),
    loadLua('presence-reap'),
  ]);
  return {
    presenceTouch: { lua: touch, numberOfKeys: 3 },
    presenceLeave: { lua: leave, numberOfKeys: 3 },
    presenceList: { lua: list, numberOfKeys: 3 },
    presenceReap: { lua: reap, numberOfKeys: 2 },
  };
}
