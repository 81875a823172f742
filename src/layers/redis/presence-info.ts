/**
 * The text formats of Redis presence: a connection's info
 * (`<processId>|<userId>|<username>`) and an event (`j|G|<userId>|<username>` for an
 * enter, `l|…` for a leave). `%` and `|` in user ids and names are escaped, so `|` can
 * separate fields and the Lua scripts can split without decoding.
 *
 * @internal
 * @module
 */
import { isValidName } from '../layer.js';
import type { PresenceEvent, PresenceMember } from '../presence.js';

function escapeField(value: string): string {
  return value.replace(/[%|]/g, (c) => (c === '%' ? '%25' : '%7C'));
}

function unescapeField(value: string): string {
  return value.replace(/%(?:25|7C)/g, (s) => (s === '%25' ? '%' : '|'));
}

/**
 * The info a connection is stored with.
 * @internal
 */
export function formatInfo(processId: string, member: PresenceMember): string {
  return `${processId}|${escapeField(member.userId)}|${escapeField(member.username)}`;
}

/**
 * A stored info's user, or undefined when malformed.
 * @internal
 */
export function parseInfo(info: string): { userId: string; username: string } | undefined {
  const [, userId, username, ...rest] = info.split('|');
  if (userId === undefined || username === undefined || rest.length > 0) return undefined;
  return { userId: unescapeField(userId), username: unescapeField(username) };
}

/**
 * An event published by a group script, or undefined when malformed.
 * @internal
 */
export function parseEvent(payload: string): PresenceEvent | undefined {
  const [kind, group, userId, username, ...rest] = payload.split('|');
  if (
    (kind !== 'j' && kind !== 'l') ||
    !isValidName(group) ||
    userId === undefined ||
    username === undefined ||
    rest.length > 0
  ) {
    return undefined;
  }
  return {
    group,
    type: kind === 'j' ? 'join' : 'leave',
    userId: unescapeField(userId),
    username: unescapeField(username),
  };
}
