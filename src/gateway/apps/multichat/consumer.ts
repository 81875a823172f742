/**
 * The MultiChat consumer: the channels-examples MultiChat protocol at `/ws/chat/`,
 * rooms from the store (SPEC §7).
 *
 * @module
 */
import type { Logger } from 'pino';
import type { Application } from '../../../application.js';
import type { User } from '../../../auth/user.js';
import type { ConsumerOptions } from '../../../consumer/consumer.js';
import { JsonWebsocketConsumer } from '../../../consumer/json-consumer.js';
import type { ChannelLayer, Envelope, LayerMessage } from '../../../layers/layer.js';
import { OutboundMessage } from '../../../outbound.js';
import { CloseCode, CloseReason } from '../../../protocol/close-codes.js';
import type { JsonObject } from '../../../protocol/messages.js';
import type { Room, Store } from '../../../store/store.js';

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
 * - `ROOM_ACCESS_DENIED`: a staff-only room for a non-staff user, or a `send`/`leave`
 *   for a room this socket has not joined.
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

/** Options of {@link multichatApp}. */
export interface MultichatOptions {
  /** Where rooms come from; read on every join and every send. */
  store: Pick<Store, 'getRoom' | 'listRooms'>;
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
}

/** The layer message type of enter notices; its handler skips the joiner. */
const ENTER_TYPE = 'chat.enter';
/** Where an enter notice's shared frame is cached on its envelope. */
const ENTER_FRAME = Symbol('multichat.enterFrame');
/** Longest room id string accepted (before leading zeros are dropped). */
const MAX_ROOM_ID_DIGITS = 20;

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
  return `room.${id}`;
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
 * - `send` and `leave` for a room not joined answer `ROOM_ACCESS_DENIED` without looking
 *   the room up, as the original did for `send`;
 * - leaving always works for a joined room, even one that became staff-only or was
 *   deleted; the leaver gets `{"leave":ID}` and then its own leave notice;
 * - when the re-check on `send` (or a repeated `join`) refuses a joined room, the
 *   socket is taken out of it: `{"error"}`, then `{"leave":ID}` and the leave notice,
 *   so it stops receiving a room it may no longer read;
 * - `message` must be a string (`MESSAGE_INVALID`) of at most `maxMessageLength`
 *   code points (`MESSAGE_TOO_LONG`); an empty one is allowed, as in the original.
 *
 * @example
 * ```ts
 * const app = auth(urlRouter([route('/ws/chat/', multichatApp({ store, layer }))]));
 * ```
 * @throws {RangeError} when `maxMessageLength` is not a positive integer.
 * @throws {TypeError} when `store` or `layer` is missing.
 */
export function multichatApp(options: MultichatOptions): Application {
  const { store, layer, logger, maxMessageLength = 4_000 } = options;
  if (typeof store?.getRoom !== 'function') {
    throw new TypeError('multichatApp needs a store with getRoom(): pass { store }');
  }
  if (typeof layer?.groupSend !== 'function') {
    throw new TypeError('multichatApp needs a channel layer: pass { layer }');
  }
  if (!Number.isSafeInteger(maxMessageLength) || maxMessageLength < 1) {
    throw new RangeError('The "maxMessageLength" option must be a positive integer');
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

    #roomId(content: JsonObject): string {
      if (this.scope.user.isAnonymous) throw new CommandError('USER_HAS_TO_LOGIN');
      const roomId = parseRoomId(content['room']);
      if (roomId === undefined) throw new CommandError('ROOM_INVALID');
      return roomId;
    }

    /** The room as the store has it now, if this user may be in it. */
    async #permittedRoom(roomId: string): Promise<Room> {
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
      await this.groupAdd(roomGroupName(roomId));
      this.#rooms.add(roomId);
      this.sendJson({ join: roomId, title: room.title });
      await this.#announceEnter(roomId);
    }

    async #leave(roomId: string): Promise<void> {
      if (!this.#rooms.has(roomId)) throw new CommandError('ROOM_ACCESS_DENIED');
      this.#rooms.delete(roomId);
      await this.#exit(roomId, true);
    }

    async #send(roomId: string, message: unknown): Promise<void> {
      if (typeof message !== 'string') throw new CommandError('MESSAGE_INVALID');
      if (tooLong(message, maxMessageLength)) throw new CommandError('MESSAGE_TOO_LONG');
      if (!this.#rooms.has(roomId)) throw new CommandError('ROOM_ACCESS_DENIED');
      // SPEC §7: permission again on every send, from the store as it is now.
      await this.#permittedRoom(roomId);
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
      await this.groupDiscard(roomGroupName(roomId));
      const notice = await this.#announceLeave(roomId);
      if (answer) {
        this.sendJson({ leave: roomId });
        this.sendJson(notice);
      }
    }

    // Presence notices live here and only here, so that a presence service that knows
    // every process's members can replace them.

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
      const notice = {
        msg_type: MultichatMsgType.Leave,
        room: roomId,
        username: this.scope.user.username,
      };
      await this.groupSend(roomGroupName(roomId), { type: 'websocket.send', json: notice });
      return notice;
    }
  }

  const consumerOptions: ConsumerOptions = logger === undefined ? { layer } : { layer, logger };
  return MultichatConsumer.asApp(consumerOptions);
}
