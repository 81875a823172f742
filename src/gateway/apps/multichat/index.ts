/**
 * The built-in MultiChat app (SPEC §7): the consumer mounted at `/ws/chat/` and the
 * helpers the gateway's `GET /api/rooms` shares with it.
 *
 * @module
 */
export { canJoin, multichatApp, MultichatMsgType, parseRoomId, roomGroupName } from './consumer.js';
export type { MultichatErrorCode, MultichatOptions } from './consumer.js';
