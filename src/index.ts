/**
 * Portcullis: realtime WebSockets authenticated with the same credentials as your REST API.
 *
 * @module
 */
export {
  CloseCode,
  CloseReason,
  FATAL_CLOSE_CODES,
  limitCloseReason,
} from './protocol/close-codes.js';
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
export { ANONYMOUS_USER, PORTCULLIS_SOURCE, identityKey } from './auth/user.js';
export type { User, UserRef, AuthInfo, CredentialTransport } from './auth/user.js';
export { Session, SessionRegistry, recheckWithAuthenticators } from './auth/sessions.js';
export type { LiveSession, SessionCheck, SessionRegistryOptions } from './auth/sessions.js';
export type { Authenticator, AuthResult, AuthContext } from './auth/authenticator.js';
export {
  Envelope,
  EnvelopeBatch,
  deliverTo,
  groupSendAll,
  isValidName,
  assertValidName,
  kLayerDelivery,
} from './layers/layer.js';
export type {
  AttachOptions,
  BatchChannelReceiver,
  ChannelLayer,
  LayerMessage,
  ChannelReceiver,
  GroupSendResult,
  LayerListener,
} from './layers/layer.js';
export { OutboundBatch, OutboundMessage } from './outbound.js';
export { createScope, deriveScope, headerValues, scopeFromRequest } from './scope.js';
export type { Scope, ScopeChanges, ClientAddress, CreateScopeOptions } from './scope.js';
export { BaseConnection, stack, wrapApplication } from './application.js';
export type {
  Application,
  Connection,
  ConnectionState,
  CloseEvent,
  AcceptOptions,
  IncomingData,
  OutgoingData,
  Middleware,
} from './application.js';
export { parseJsonObject, isAuthFrame } from './protocol/messages.js';
export type { JsonObject, AuthFrame } from './protocol/messages.js';
export { route, urlRouter } from './routing/url-router.js';
export type { Route, RouteOptions, Permission } from './routing/url-router.js';
export { protocolRouter } from './routing/protocol-router.js';
export type { ProtocolRouterOptions } from './routing/protocol-router.js';
export { originCheck, originMatcher, normalizeOrigin } from './middleware/origin.js';
export type { OriginCheckOptions } from './middleware/origin.js';
export { connectionLimits } from './middleware/limits.js';
export { AddressWindowLimiter, RedisAttemptLimiter } from './auth/rate-limit.js';
export type {
  AttemptLimiter,
  AddressWindowLimiterOptions,
  RedisAttemptLimiterOptions,
} from './auth/rate-limit.js';
export type { ConnectionLimitsOptions } from './middleware/limits.js';
export { WebsocketConsumer, handlerNameFor } from './consumer/consumer.js';
export type { ConsumerOptions, ConsumerClass, LayerHandler } from './consumer/consumer.js';
export { JsonWebsocketConsumer } from './consumer/json-consumer.js';
export { MemoryChannelLayer } from './layers/memory.js';
export type { MemoryChannelLayerOptions, LayerStats } from './layers/memory.js';
export { attachWebSocket, listen, WebSocketTransport } from './transport/ws.js';
export type {
  WebSocketTransportOptions,
  TransportCloseOptions,
  RunningServer,
  ListenOptions,
} from './transport/ws.js';
export { defaultLogger, REDACTED_PATHS } from './logging.js';
export { authMiddleware } from './middleware/auth.js';
export type {
  AuthMiddleware,
  AuthMiddlewareOptions,
  AuthOutcome,
  AuthResultEvent,
} from './middleware/auth.js';
export { findCredentials } from './auth/credentials.js';
export type {
  CredentialTransportOptions,
  FoundCredential,
  HandshakeCredentials,
} from './auth/credentials.js';
export { BEARER_SUBPROTOCOL_PREFIX, isBearerSubprotocol } from './protocol/subprotocol.js';
export {
  broadcastCredentialRevoked,
  broadcastUserRevoked,
  REVOCATION_BROADCAST_GROUP,
} from './auth/revocation.js';
export type { RevokedMessage } from './auth/revocation.js';
export { tokenAuthenticator, ticketAuthenticator } from './auth/authenticators/token.js';
export type {
  TokenAuthenticator,
  TokenAuthenticatorOptions,
  TicketAuthenticatorOptions,
  TokenVerifier,
  TicketRedeemer,
} from './auth/authenticators/token.js';
export { jwtAuthenticator } from './auth/authenticators/jwt.js';
export type {
  JwtAlgorithm,
  JwtAuthenticator,
  JwtAuthenticatorOptions,
  JwtCacheOptions,
  JwtClaimNames,
  JwtCommonOptions,
  JwksFetchOptions,
  JwtJwksOptions,
  JwtPublicKey,
  JwtPublicKeyOptions,
  JwtSecretOptions,
} from './auth/authenticators/jwt.js';
export {
  DJANGO_SOURCE,
  djangoRevalidator,
  djangoSessionAuthenticator,
  drfTokenAuthenticator,
  simpleJwtAuthenticator,
} from './auth/authenticators/django.js';
export type {
  DjangoAuthTokenTable,
  DjangoAuthUserTable,
  DjangoDatabase,
  DjangoRevalidatorOptions,
  DjangoSessionAuthenticatorOptions,
  DjangoSessionTable,
  DrfTokenAuthenticatorOptions,
  RevalidatedSession,
  RevalidationResult,
  SimpleJwtAuthenticatorOptions,
} from './auth/authenticators/django.js';
export { customAuthenticator } from './auth/authenticators/custom.js';
export type { AuthenticateFunction, CustomAuthResult } from './auth/authenticators/custom.js';
export { VerificationCache, credentialDigest } from './auth/verification-cache.js';
export type {
  VerificationCacheOptions,
  VerificationCacheMeta,
  CachedVerification,
} from './auth/verification-cache.js';
export {
  generateToken,
  parseToken,
  looksLikePortcullisToken,
  digestToken,
  constantTimeEqual,
  TOKEN_PREFIX,
} from './auth/tokens.js';
export {
  generateTicket,
  parseTicket,
  looksLikeTicket,
  TICKET_PREFIX,
  TICKET_TTL_MS,
} from './auth/tickets.js';
export { hashPassword, verifyPassword, DEFAULT_SCRYPT_PARAMS } from './auth/passwords.js';
export {
  Accounts,
  DEFAULT_TOKEN_TTL_MS,
  withdrawnTokens,
  redeemStoredTicket,
  verifyStoredToken,
} from './auth/accounts.js';
export type {
  AccountStore,
  AccountsOptions,
  CreateUserInput,
  CreateTokenOptions,
  CreatedToken,
  VerifiedToken,
  CreatedTicket,
  RedeemedTicket,
  TokenRows,
  TicketRows,
} from './auth/accounts.js';
export { isStorableText, unstorableText } from './text.js';
export type { ScryptParams } from './auth/passwords.js';
export { UsernameTakenError } from './store/errors.js';
export { RedisChannelLayer } from './layers/redis/layer.js';
export type {
  RedisChannelLayerOptions,
  RedisLayerStatus,
  RedisLayerStats,
} from './layers/redis/layer.js';
export type { RedisConnectionOptions } from './layers/redis/options.js';
export { MemoryPresence } from './layers/presence.js';
export type {
  Presence,
  PresenceMember,
  PresenceEvent,
  PresenceJoinResult,
  PresenceLeaveResult,
  PresenceUser,
  PresenceListener,
  MemoryPresenceOptions,
} from './layers/presence.js';
export { ChannelsRedisLayer } from './layers/channels-redis.js';
export type { ChannelsRedisLayerOptions } from './layers/channels-redis.js';
export { RedisPresence } from './layers/redis/presence.js';
export type { RedisPresenceOptions, RedisPresenceStatus } from './layers/redis/presence.js';
