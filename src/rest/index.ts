/**
 * Portcullis for Fastify: the `portcullisRest` plugin (header authentication shared with
 * the WebSockets and the token API of SPEC §6), route guards and leak-free error handling.
 *
 * @module
 */
export { portcullisRest } from './plugin.js';
export type { PortcullisRestOptions, LoginRateLimitOptions, SocketRevoker } from './plugin.js';
export type { RestRevoker, RestStore } from './routes/context.js';
export { requireUser, requireStaff, requirePortcullisToken } from './routes/guards.js';
export type { RouteGuard } from './routes/guards.js';
export type { MeBody } from './routes/me.js';
export {
  RestError,
  RestDetail,
  installErrorHandlers,
  restErrorHandler,
  restLoggerOptions,
  redactUrl,
} from './error-handler.js';
export type {
  ErrorBody,
  FieldErrors,
  RestErrorOptions,
  ErrorHandlerOptions,
} from './error-handler.js';
