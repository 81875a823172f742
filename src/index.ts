/**
 * Portcullis: realtime WebSockets authenticated with the same credentials as your REST API.
 *
 * @module
 */
export { CloseCode, CloseReason, FATAL_CLOSE_CODES, limitCloseReason } from './protocol/close-codes.js';
export type { CloseReasonText } from './protocol/close-codes.js';
export {
  PortcullisError,
  ProtocolError,
  InvalidChannelNameError,
  ChannelFullError,
  AuthenticationError,
  ServiceUnavailableError,
  ConfigError,
} from './errors.js';
export type { PortcullisErrorCode } from './errors.js';
export { ANONYMOUS_USER } from './auth/user.js';
export type { User, AuthInfo, CredentialTransport } from './auth/user.js';
export type { Authenticator, AuthResult, AuthContext } from './auth/authenticator.js';
export { Envelope, isValidName, assertValidName } from './layers/layer.js';
export type { ChannelLayer, LayerMessage, ChannelReceiver, GroupSendResult } from './layers/layer.js';
