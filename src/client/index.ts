/**
 * The Portcullis client SDK (`portcullis/client`) for browsers and Node.js: a reconnecting
 * WebSocket client that carries the same credential as your REST calls, and a small
 * client for the gateway's token API. No Node.js built-ins, so it bundles for browsers.
 *
 * @module
 */
export { createClient } from './client.js';
export type {
  ClientCloseEvent,
  ClientEventMap,
  ClientListener,
  ClientListeners,
  ClientOpenEvent,
  ClientOptions,
  ClientState,
  PortcullisClient,
  WebSocketConstructor,
  WebSocketImplOptions,
  WebSocketLike,
} from './client.js';
export {
  BEARER_PROTOCOL_PREFIX,
  bearerSubprotocol,
  cookieCredential,
  firstMessageCredential,
  headerCredential,
  subprotocolCredential,
  ticketCredential,
} from './credentials.js';
export type {
  CookieCredentialOptions,
  Credential,
  CredentialMethod,
  CredentialRequest,
  ConnectionPlan,
  FetchTicket,
  GetToken,
  HeaderCredentialOptions,
  TicketCredentialOptions,
  TokenCredentialOptions,
} from './credentials.js';
export { backoff } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { classifyClose, isFatalClose, shouldReconnect } from './close-policy.js';
export type { CloseAction } from './close-policy.js';
export {
  ConnectionError,
  HttpError,
  InvalidMessageError,
  PortcullisClientError,
  UnauthorizedError,
} from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { createRestClient } from './rest.js';
export type {
  FetchLike,
  LoginResult,
  Me,
  RestClient,
  RestClientOptions,
  RoomInfo,
  TicketResult,
} from './rest.js';
export { CloseCode, CloseReason } from '../protocol/close-codes.js';
export type { CloseReasonText } from '../protocol/close-codes.js';
export type { AuthFrame, JsonObject } from '../protocol/messages.js';
