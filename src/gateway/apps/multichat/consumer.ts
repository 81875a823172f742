/**
 * The MultiChat consumer: the channels-examples MultiChat protocol at `/ws/chat/`,
 * rooms from the store (SPEC §7), with enter and leave notices from layer group sends
 * or, across processes and per user, from a {@link Presence} (issue 5, item 3).
 *
 * @module
 */
import type { Logger } from 'pino';
import type { Application } from '../../../application.js';
import { identityKey } from '../../../auth/user.js';
import type { User } from '../../../auth/user.js';
import type { ConsumerOptions } from '../../../consumer/consumer.js';
import { JsonWebsocketConsumer } from '../../../consumer/json-consumer.js';
import { deliverTo, Envelope } from '../../../layers/layer.js';
import type { ChannelLayer, ChannelReceiver, LayerMessage } from '../../../layers/layer.js';
import type { Presence, PresenceEvent, PresenceUser } from '../../../layers/presence.js';
import { OutboundMessage } from '../../../outbound.js';
import { CloseCode, CloseReason } from '../../../protocol/close-codes.js';
import type { JsonObject } from '../../../protocol/messages.js';
import type { Room } from '../../../store/store.js';

/**
 * `msg_type` values of room traffic, as the channels-examples MultiChat settings number
 * them. Portcullis sends `Message`, `Enter` and `Leave`; the others are reserved so that
 * clients of the original keep their meaning.
 */
export const MultichatMsgType = {
  Message: 0,
  Warning: 1,
  Alert: 2,
  Muted: 3,
  Enter: 4,
  Leave: 5,
} as const;

/**
 * In-band error codes, sent as `{"error":CODE}` with the socket left open.
 *
 * - `ROOM_INVALID`: the room id is missing or malformed, or no such room exists.
 * - `ROOM_ACCESS_DENIED`: a staff-only room for a non-staff user, or a `send` to a room
 *   this socket has not joined.
 * - `USER_HAS_TO_LOGIN`: the connection is anonymous (defensive: anonymous sockets are
 *   closed 4401 at connect).
 * - `UNKNOWN_COMMAND`: `command` is missing or not `join`, `leave` or `send`.
 * - `MESSAGE_INVALID`: a `send` whose `message` is not a string (Portcullis addition).
 * - `MESSAGE_TOO_LONG`: a `send` whose `message` is over the length limit (Portcullis
 *   addition).
 */
export type MultichatErrorCode =
  | 'ROOM_INVALID'
  | 'ROOM_ACCESS_DENIED'
  | 'USER_HAS_TO_LOGIN'
  | 'UNKNOWN_COMMAND'
  | 'MESSAGE_INVALID'
  | 'MESSAGE_TOO_LONG';

/** A MultiChat room as the app reads it. */
export type RoomInfo = Pick<Room, 'id' | 'title' | 'staffOnly'>;

/**
 * Where MultiChat reads rooms: Portcullis's {@link Store}, or in Django mode the Django
 * app's own room table (SPEC §11), so that ids and titles match the original example's.
 */
export interface RoomSource {
  /** The room with this canonical id (see {@link parseRoomId}), or `undefined`. */
  getRoom(id: string): Promise<RoomInfo | undefined>;
  /** Every room, by id (the gateway's `GET /api/rooms`). */
  listRooms(): Promise<readonly RoomInfo[]>;
}

/** Options of {@link multichatApp}. */
export interface MultichatOptions {
  /** Where rooms come from (a {@link Store} is one); read on every join and every send. */
  store: RoomSource;
  /** Carries room traffic between sockets and processes (group per room). */
  layer: ChannelLayer;
  /** Where consumer errors are logged. */
  logger?: Logger;
  /**
   * The longest `message` a `send` may carry, in characters (Unicode code points).
   * Longer ones are answered `{"error":"MESSAGE_TOO_LONG"}` and go nowhere.
   * @default 4000
   */
  maxMessageLength?: number;
  /**
   * Who is in which room, across processes. When given, enter and leave notices come
   * from presence instead of layer group sends, and count **users**, not sockets: a
   * user's second tab in a room makes no enter notice, and only their last connection
   * leaving makes a leave notice for the others. The members of a process that dies
   * leave (with notices) once its presence heartbeat expires. Every process serving
   * the same rooms must agree on this option: a process without presence still sends
   * its notices through the layer.
   *
   * The socket's own answers do not depend on it: the leaver always gets its own leave
   * notice, even when another of its connections keeps the user in the room.
   *
   * On one process a notice queues behind the room traffic that reached a member first,
   * so "bob left" never overtakes bob's last message. Across processes, presence events
   * and room messages travel on separate connections: a notice and a message sent just
   * before it by another process may arrive in either order.
   *
   * A presence that cannot be reached on `join` closes the socket 1013 `try again
   * later` before it is answered (fail closed: nobody sits in a room the others cannot
   * see); on `leave` and disconnect the failure is logged and the member expires with
   * its heartbeat instead.
   */
  presence?: Presence;
  /**
   * What room traffic looks like on the layer:
   * - `'portcullis'`: groups named by {@link roomGroupName}, client frames built once per
   *   message (`websocket.send`);
   * - `'channels'`: the original example's group messages, so Django Channels consumers
   *   share the rooms through a `ChannelsRedisLayer` (SPEC §11): groups `room-ID` and
   *   events `{"type":"chat.message","room_id","username","message"}`, `chat.join` and
   *   `chat.leave` (`room_id`, `username`), whichever side sends them. As in the original,
   *   the enter notice is sent before joining the group (so the joiner does not get it)
   *   and the leave notice before leaving it (so the leaver gets its own after `{"leave"}`).
   *   Exclusive with `presence`.
   *
   * @default 'portcullis'
   */
  groupMessages?: 'portcullis' | 'channels';
}

/** The layer message type of enter notices; its handler skips the joiner. */
const ENTER_TYPE = 'chat.enter';
/** Where an enter notice's shared frame is cached on its envelope. */
const ENTER_FRAME = Symbol('multichat.enterFrame');
/** Where a channels-mode event's client frame is cached on its envelope. */
const EVENT_FRAME = Symbol('multichat.eventFrame');
/** Longest room id string accepted (before leading zeros are dropped). */
const MAX_ROOM_ID_DIGITS = 20;
/** What {@link roomGroupName} puts before the room id. */
const ROOM_GROUP_PREFIX = 'room.';

/**
 * The layer group of a room's members: `room.<id>`.
 *
 * @example
 * ```ts
 * await layer.groupSend(roomGroupName('1'), { type: 'websocket.send', json: { msg_type: 0 } });
 * ```
 * @throws {TypeError} when `roomId` is not a canonical room id (see {@link parseRoomId}).
 */
export function roomGroupName(roomId: string | number): string {
  const id = parseRoomId(roomId);
  if (id === undefined || id !== String(roomId)) {
    throw new TypeError(
      `Invalid room id ${JSON.stringify(String(roomId).slice(0, 40))}: expected a positive integer`,
    );
  }
  return `${ROOM_GROUP_PREFIX}${id}`;
}

/**
 * Who is in a room, on every process: one entry per user with their connection count,
 * sorted by username. The MultiChat app keeps `presence` up to date when it is given
 * the same instance (see {@link MultichatOptions.presence}); any consumer or HTTP route
 * holding that instance can read it.
 *
 * @example
 * ```ts
 * const presence = await RedisPresence.connect({ url: process.env.REDIS_URL });
 * const app = multichatApp({ store, layer, presence });
 * // elsewhere, e.g. a "who is here" route:
 * const users = await roomMembers(presence, '1'); // [{ userId: 'portcullis:7', username: 'ada', connections: 2 }] (keyed by identityKey)
 * ```
 * @throws {TypeError} when `roomId` is not a canonical room id (see {@link parseRoomId}).
 * @throws {ServiceUnavailableError} when presence cannot reach its backing service.
 */
export function roomMembers(presence: Presence, roomId: string | number): Promise<PresenceUser[]> {
  return presence.members(roomGroupName(roomId));
}

/**
 * Whether a user may join a room: any authenticated user, and for a staff-only room only
 * staff. The gateway's `GET /api/rooms` lists the rooms this allows.
 *
 * @example
 * ```ts
 * const visible = (await store.listRooms()).filter((room) => canJoin(user, room));
 * ```
 */
export function canJoin(
  user: Pick<User, 'isStaff' | 'isAnonymous'>,
  room: Pick<Room, 'staffOnly'>,
): boolean {
  return !user.isAnonymous && (!room.staffOnly || user.isStaff);
}

/**
 * Reads a room id as a client sends it: a positive safe integer, or a string of decimal
 * digits naming one. `1`, `"1"` and `"01"` all name room `"1"` (the original's Django
 * `int()` dropped leading zeros too). Floats such as `1.5`, negative numbers, signs,
 * spaces, exponents in strings, ids past 2^53 − 1, strings over 20 characters,
 * booleans, `null`, arrays and objects are refused.
 *
 * @returns the canonical id (decimal, no leading zeros), or `undefined` when malformed.
 */
export function parseRoomId(value: unknown): string | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 1 ? String(value) : undefined;
  }
  if (typeof value !== 'string' || value.length > MAX_ROOM_ID_DIGITS || !/^\d+$/.test(value)) {
    return undefined;
  }
  const number = Number(value);
  return Number.isSafeInteger(number) && number >= 1 ? String(number) : undefined;
}

/** Length in code points, without splitting strings that are clearly short or long. */
function tooLong(text: string, max: number): boolean {
  // Each code point is one or two UTF-16 units.
  if (text.length <= max) return false;
  if (text.length > 2 * max) return true;
  let count = 0;
  for (const _ of text) {
    if (++count > max) return true;
  }
  return false;
}

/** Whether `value` has the methods of a {@link Presence} the app calls. */
function isPresence(value: unknown): value is Presence {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof Presence, unknown>>;
  return (
    typeof candidate.join === 'function' &&
    typeof candidate.leave === 'function' &&
    typeof candidate.members === 'function' &&
    typeof candidate.onChange === 'function'
  );
}

/**
 * `layer` as the app's consumers see it, with every attached receiver recorded by
 * channel. Handing a presence notice to a member's receiver queues it behind the room
 * traffic that reached the member first, exactly like a layer message: a member never
 * reads "bob left" before bob's last message, nor a notice before its own `{"join"}`
 * answer. Everything else goes straight to `layer`.
 */
function recordReceivers(
  layer: ChannelLayer,
  receivers: Map<string, ChannelReceiver>,
): ChannelLayer {
  return {
    newChannel: (prefix?: string) => layer.newChannel(prefix),
    attach(channel, receiver, options) {
      layer.attach(channel, receiver, options);
      receivers.set(channel, receiver);
    },
    detach(channel, receiver) {
      if (receiver === undefined || receivers.get(channel) === receiver) receivers.delete(channel);
      return layer.detach(channel, receiver);
    },
    send: (channel, message) => layer.send(channel, message),
    receive: (channel, signal) => layer.receive(channel, signal),
    groupAdd: (group, channel) => layer.groupAdd(group, channel),
    groupDiscard: (group, channel) => layer.groupDiscard(group, channel),
    groupSend: (group, message) => layer.groupSend(group, message),
    ping: () => layer.ping(),
    close: () => layer.close(),
  };
}

/** An error answered in-band: thrown inside a command, sent as `{"error":code}`. */
class CommandError extends Error {
  readonly code: MultichatErrorCode;
  /** A joined room the socket must leave after the answer (its permission is gone). */
  readonly evict: string | undefined;
  constructor(code: MultichatErrorCode, evict?: string) {
    super(code);
    this.code = code;
    this.evict = evict;
  }
}

/**
 * The MultiChat app (SPEC §7): `{"command":"join"|"leave"|"send","room":ID,…}` frames,
 * rooms read from `store`, room traffic through `layer` groups named by
 * {@link roomGroupName}. Mount it behind the auth middleware; anonymous sockets are
 * closed 4401 `authentication required`.
 *
 * Beyond SPEC §7:
 * - joining a room already joined answers `{"join"}` again and sends no second enter
 *   notice;
 * - `send` to a room not joined answers `ROOM_ACCESS_DENIED` without looking the room up,
 *   as the original did; `leave` of a room not joined answers `{"leave":ID}` as the
 *   original does (a page leaving after a reconnect), once the room is found and
 *   permitted, and tells nobody;
 * - leaving always works for a joined room, even one that became staff-only or was
 *   deleted; the leaver gets `{"leave":ID}` and then its own leave notice;
 * - when the re-check on `send` (or a repeated `join`) refuses a joined room, the
 *   socket is taken out of it: `{"error"}`, then `{"leave":ID}` and the leave notice,
 *   so it stops receiving a room it may no longer read;
 * - `message` must be a string (`MESSAGE_INVALID`) of at most `maxMessageLength`
 *   code points (`MESSAGE_TOO_LONG`); an empty one is allowed, as in the original.
 * - with `presence`, notices are per user and across processes (see
 *   {@link MultichatOptions.presence}); each connection is a presence member whose id
 *   is its channel name, in the group {@link roomGroupName} names.
 *
 * @example
 * ```ts
 * const app = auth(urlRouter([route('/ws/chat/', multichatApp({ store, layer }))]));
 * // many processes: notices per user, and a killed process's users leave
 * const presence = await RedisPresence.connect({ url, processId: layer.processId });
 * const scaled = multichatApp({ store, layer, presence });
 * ```
 * @throws {RangeError} when `maxMessageLength` is not a positive integer.
 * @throws {TypeError} when `store` or `layer` is missing, or `presence` is not a Presence.
 */
export function multichatApp(options: MultichatOptions): Application {
  const {
    store,
    layer,
    logger,
    maxMessageLength = 4_000,
    presence,
    groupMessages = 'portcullis',
  } = options;
  if (typeof store?.getRoom !== 'function') {
    throw new TypeError('multichatApp needs a store with getRoom(): pass { store }');
  }
  if (typeof layer?.groupSend !== 'function') {
    throw new TypeError('multichatApp needs a channel layer: pass { layer }');
  }
  if (!Number.isSafeInteger(maxMessageLength) || maxMessageLength < 1) {
    throw new RangeError('The "maxMessageLength" option must be a positive integer');
  }
  if (presence !== undefined && !isPresence(presence)) {
    throw new TypeError(
      'The "presence" option must be a Presence (join, leave, members and onChange)',
    );
  }
  if (groupMessages !== 'portcullis' && groupMessages !== 'channels') {
    throw new TypeError("The \"groupMessages\" option must be 'portcullis' or 'channels'");
  }
  const channels = groupMessages === 'channels';
  if (channels && presence !== undefined) {
    throw new TypeError(
      'The "presence" and "groupMessages: \'channels\'" options are exclusive: notices are group messages there',
    );
  }
  /** The original example's group of a room (`Room.group_name`). */
  const channelsGroup = (roomId: string): string => `room-${roomId}`;

  // With presence, this process's room members: group → member channel → the user id it
  // joined presence as. One presence listener per app turns each event into one
  // envelope, encoded once, handed to each local member that should see it.
  const localMembers = new Map<string, Map<string, string>>();
  const receivers = new Map<string, ChannelReceiver>();
  let stopListening: (() => void) | undefined;

  function forward(event: PresenceEvent): void {
    const members = localMembers.get(event.group);
    if (members === undefined) return;
    const envelope = new Envelope({
      type: 'websocket.send',
      json: {
        msg_type: event.type === 'join' ? MultichatMsgType.Enter : MultichatMsgType.Leave,
        room: event.group.slice(ROOM_GROUP_PREFIX.length),
        username: event.username,
      },
    });
    for (const [channel, userId] of [...members]) {
      // SPEC §7: the joiner gets no enter notice of its own, on any of its sockets.
      if (event.type === 'join' && userId === event.userId) continue;
      const receiver = receivers.get(channel);
      if (receiver !== undefined) deliverTo(receiver, envelope);
    }
  }

  function addLocal(group: string, channel: string, userId: string): void {
    let members = localMembers.get(group);
    if (members === undefined) {
      members = new Map();
      localMembers.set(group, members);
    }
    members.set(channel, userId);
    // Listening only while this process has members: events for rooms nobody here is in
    // need no work, and an app that is dropped leaves no listener behind.
    stopListening ??= presence?.onChange(forward);
  }

  function removeLocal(group: string, channel: string): void {
    const members = localMembers.get(group);
    if (members === undefined || !members.delete(channel)) return;
    if (members.size > 0) return;
    localMembers.delete(group);
    if (localMembers.size > 0) return;
    stopListening?.();
    stopListening = undefined;
  }

  class MultichatConsumer extends JsonWebsocketConsumer {
    /** Rooms this socket is in, by canonical id. */
    readonly #rooms = new Set<string>();

    override connect(): void {
      // SPEC §7: the original refused the handshake with 403; browsers learn why this way.
      if (this.scope.user.isAnonymous) {
        this.close(CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
        return;
      }
      this.accept();
    }

    override async receiveJson(content: JsonObject): Promise<void> {
      try {
        switch (content['command']) {
          case 'join':
            return await this.#join(this.#roomId(content));
          case 'leave':
            return await this.#leave(this.#roomId(content));
          case 'send':
            return await this.#send(this.#roomId(content), content['message']);
          default:
            throw new CommandError('UNKNOWN_COMMAND');
        }
      } catch (error) {
        if (!(error instanceof CommandError)) throw error;
        this.sendJson({ error: error.code });
        if (error.evict !== undefined) await this.#leave(error.evict);
      }
    }

    override async disconnect(): Promise<void> {
      const rooms = [...this.#rooms];
      this.#rooms.clear();
      // One room's layer failure must not keep the others' members from their notice.
      await Promise.all(
        rooms.map((roomId) =>
          this.#exit(roomId, false).catch((error: unknown) => {
            this.logger.warn({ err: error, room: roomId }, 'multichat: could not leave room');
          }),
        ),
      );
    }

    /** Enter notices reach every member but the joiner (SPEC §7). */
    onChatEnter(message: LayerMessage, envelope: Envelope): void {
      if (message['exclude'] === this.channelName) return;
      // Encoded once per envelope, shared by every local member, as `websocket.send` is.
      const cached = envelope.cache.get(ENTER_FRAME);
      if (cached instanceof OutboundMessage) {
        this.send(cached);
        return;
      }
      const outbound = new OutboundMessage(JSON.stringify(message['json']));
      envelope.cache.set(ENTER_FRAME, outbound);
      this.send(outbound);
    }

    // The original example's events ('channels' mode), from this app or Django's consumer.

    onChatMessage(event: LayerMessage, envelope: Envelope): void {
      const { message } = event;
      if (typeof message !== 'string') return this.#dropped(event);
      this.#forwardEvent(event, envelope, MultichatMsgType.Message, message);
    }

    onChatJoin(event: LayerMessage, envelope: Envelope): void {
      this.#forwardEvent(event, envelope, MultichatMsgType.Enter);
    }

    onChatLeave(event: LayerMessage, envelope: Envelope): void {
      this.#forwardEvent(event, envelope, MultichatMsgType.Leave);
    }

    /** The client frame of an event, built once per envelope for every local member. */
    #forwardEvent(
      event: LayerMessage,
      envelope: Envelope,
      msgType: number,
      message?: string,
    ): void {
      // Django code sends `room_id` as the int it has; clients get the id as a string (SPEC §7).
      const room = parseRoomId(event['room_id']);
      const { username } = event;
      if (!channels || room === undefined || typeof username !== 'string')
        return this.#dropped(event);
      const cached = envelope.cache.get(EVENT_FRAME);
      if (cached instanceof OutboundMessage) {
        this.send(cached);
        return;
      }
      const frame =
        message === undefined
          ? { msg_type: msgType, room, username }
          : { msg_type: msgType, room, username, message };
      const outbound = new OutboundMessage(JSON.stringify(frame));
      envelope.cache.set(EVENT_FRAME, outbound);
      this.send(outbound);
    }

    #dropped(event: LayerMessage): void {
      this.logger.warn({ type: event.type }, 'multichat: malformed room event dropped');
    }

    #roomId(content: JsonObject): string {
      if (this.scope.user.isAnonymous) throw new CommandError('USER_HAS_TO_LOGIN');
      const roomId = parseRoomId(content['room']);
      if (roomId === undefined) throw new CommandError('ROOM_INVALID');
      return roomId;
    }

    /** The room as the store has it now, if this user may be in it. */
    async #permittedRoom(roomId: string): Promise<RoomInfo> {
      const room = await store.getRoom(roomId);
      if (room !== undefined && canJoin(this.scope.user, room)) return room;
      const code = room === undefined ? 'ROOM_INVALID' : 'ROOM_ACCESS_DENIED';
      // A member whose room changed under it stops receiving what it may no longer read.
      throw new CommandError(code, this.#rooms.has(roomId) ? roomId : undefined);
    }

    async #join(roomId: string): Promise<void> {
      const room = await this.#permittedRoom(roomId);
      if (this.#rooms.has(roomId)) {
        this.sendJson({ join: roomId, title: room.title });
        return;
      }
      if (channels) {
        const event = { room_id: roomId, username: this.scope.user.username };
        await this.groupSend(channelsGroup(roomId), { type: 'chat.join', ...event });
        await this.groupAdd(channelsGroup(roomId));
        this.#rooms.add(roomId);
        this.sendJson({ join: roomId, title: room.title });
        return;
      }
      const group = roomGroupName(roomId);
      await this.groupAdd(group);
      // With presence, the join counts before it is answered: a presence that cannot be
      // reached fails the join closed (1013) rather than hide a member from the others.
      if (presence !== undefined) await this.#enterPresence(presence, group);
      this.#rooms.add(roomId);
      this.sendJson({ join: roomId, title: room.title });
      if (presence === undefined) await this.#announceEnter(roomId);
    }

    async #leave(roomId: string): Promise<void> {
      if (!this.#rooms.has(roomId)) {
        // The original answers a leave it has nothing to undo (SPEC §7).
        await this.#permittedRoom(roomId);
        this.sendJson({ leave: roomId });
        return;
      }
      this.#rooms.delete(roomId);
      await this.#exit(roomId, true);
    }

    async #send(roomId: string, message: unknown): Promise<void> {
      if (typeof message !== 'string') throw new CommandError('MESSAGE_INVALID');
      if (tooLong(message, maxMessageLength)) throw new CommandError('MESSAGE_TOO_LONG');
      if (!this.#rooms.has(roomId)) throw new CommandError('ROOM_ACCESS_DENIED');
      // SPEC §7: permission again on every send, from the store as it is now.
      await this.#permittedRoom(roomId);
      if (channels) {
        await this.groupSend(channelsGroup(roomId), {
          type: 'chat.message',
          room_id: roomId,
          username: this.scope.user.username,
          message,
        });
        return;
      }
      await this.groupSend(roomGroupName(roomId), {
        type: 'websocket.send',
        json: {
          msg_type: MultichatMsgType.Message,
          room: roomId,
          username: this.scope.user.username,
          message,
        },
      });
    }

    /** Leaves the group; the leaver (when still connected) gets its answer and notice. */
    async #exit(roomId: string, answer: boolean): Promise<void> {
      if (channels) {
        const { username } = this.scope.user;
        await this.groupSend(channelsGroup(roomId), {
          type: 'chat.leave',
          room_id: roomId,
          username,
        });
        await this.groupDiscard(channelsGroup(roomId));
        if (answer) this.sendJson({ leave: roomId });
        return;
      }
      const group = roomGroupName(roomId);
      let notice: JsonObject;
      if (presence === undefined) {
        await this.groupDiscard(group);
        notice = await this.#announceLeave(roomId);
      } else {
        // Both at once, and presence even when the layer fails: a member presence never
        // hears leave would be renewed by this process's heartbeat for as long as it runs.
        await Promise.all([this.groupDiscard(group), this.#leavePresence(presence, group)]);
        notice = this.#leaveNotice(roomId);
      }
      if (answer) {
        this.sendJson({ leave: roomId });
        this.sendJson(notice);
      }
    }

    /** This socket's channel, its presence member id and where its notices are queued. */
    get #channel(): string {
      const channel = this.channelName;
      // Unreachable: multichatApp requires a layer, and the layer names every consumer.
      if (channel === undefined) throw new TypeError('multichat: consumer without a channel');
      return channel;
    }

    #leaveNotice(roomId: string): JsonObject {
      return { msg_type: MultichatMsgType.Leave, room: roomId, username: this.scope.user.username };
    }

    // Enter and leave notices live here and only here: through layer group sends
    // (#announceEnter, #announceLeave) or, with presence, from presence events that
    // `forward` hands to this process's members (#enterPresence, #leavePresence).

    /**
     * Joins presence. Registered locally first, so no enter notice of someone else
     * joining meanwhile is missed; the notices queue behind this join's answer. On
     * failure the socket is taken out of the group again and the error goes on: the
     * consumer closes 1013 for a `ServiceUnavailableError`.
     */
    async #enterPresence(presence: Presence, group: string): Promise<void> {
      const channel = this.#channel;
      // Presence keys on identity (SPEC §3): JWT user 2 is not the store's user 2.
      const { username } = this.scope.user;
      const userId = identityKey(this.scope.user);
      addLocal(group, channel, userId);
      try {
        await presence.join(group, { id: channel, userId, username });
      } catch (error) {
        removeLocal(group, channel);
        await this.groupDiscard(group).catch((discardError: unknown) => {
          this.logger.warn({ err: discardError, group }, 'multichat: could not leave group');
        });
        throw error;
      }
    }

    /** Leaves presence; never rejects, since the socket is leaving either way. */
    async #leavePresence(presence: Presence, group: string): Promise<void> {
      const channel = this.#channel;
      // First, so the leave event (and any notice after it) is not queued for this socket:
      // it gets its own leave notice directly, once.
      removeLocal(group, channel);
      try {
        await presence.leave(group, channel);
      } catch (error) {
        // RedisPresence stops renewing the member before it calls Redis, so the member
        // expires after its ttl, and the others get their leave notice then.
        this.logger.warn({ err: error, group }, 'multichat: presence leave failed');
      }
    }

    async #announceEnter(roomId: string): Promise<void> {
      await this.groupSend(roomGroupName(roomId), {
        type: ENTER_TYPE,
        exclude: this.channelName,
        json: {
          msg_type: MultichatMsgType.Enter,
          room: roomId,
          username: this.scope.user.username,
        },
      });
    }

    /** Tells the remaining members; returns the notice for the leaver's own copy. */
    async #announceLeave(roomId: string): Promise<JsonObject> {
      const notice = this.#leaveNotice(roomId);
      await this.groupSend(roomGroupName(roomId), { type: 'websocket.send', json: notice });
      return notice;
    }
  }

  // Without presence the consumers get `layer` itself: the behaviour stays exactly the
  // layer-only one.
  const consumerLayer = presence === undefined ? layer : recordReceivers(layer, receivers);
  const consumerOptions: ConsumerOptions =
    logger === undefined ? { layer: consumerLayer } : { layer: consumerLayer, logger };
  return MultichatConsumer.asApp(consumerOptions);
}
