/**
 * The built-in MultiChat app (SPEC §7): the consumer mounted at `/ws/chat/` and the
 * helpers the gateway's `GET /api/rooms` shares with it, including {@link roomMembers}
 * for who is in a room when the app runs with presence.
 *
 * @module
 */
export {
  canJoin,
  multichatApp,
  MultichatMsgType,
  parseRoomId,
  roomGroupName,
  roomMembers,
} from './consumer.js';
export type { MultichatErrorCode, MultichatOptions } from './consumer.js';
