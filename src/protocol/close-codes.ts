/**
 * WebSocket close codes and reason texts used by Portcullis (SPEC §5).
 *
 * Server and client both import this module: no close-code literal appears anywhere
 * else. Reasons are fixed strings, all well under the 123-byte limit of RFC 6455 §5.5.
 *
 * @module
 */

/** Close codes sent by Portcullis. Codes and reasons are part of the public contract. */
export enum CloseCode {
  /** Normal closure: the application finished with the connection. */
  Normal = 1000,
  /** Server shutting down; clients should reconnect, possibly elsewhere. */
  GoingAway = 1001,
  /** A frame was larger than the configured maximum message size. */
  MessageTooBig = 1009,
  /** An unexpected server error; no detail is sent to the client. */
  InternalError = 1011,
  /** A backing service (database, Redis) is down; the server fails closed. Retry later. */
  TryAgainLater = 1013,
  /** A frame the protocol cannot accept: bad JSON, not an object, binary where text is expected. */
  BadFrame = 4400,
  /** Not authenticated. The reason tells "refresh and reconnect" (`token expired`) from "log in again". */
  Unauthorized = 4401,
  /** Authenticated but not allowed, or a cross-site origin. Clients should stop. */
  Forbidden = 4403,
  /** No credential arrived within the first-message window. */
  AuthenticationTimeout = 4408,
  /** A rate or connection limit was hit. Retry with backoff. */
  TooManyRequests = 4429,
}

/** Reason texts sent with close codes. Clients may switch on them (SPEC §5). */
export const CloseReason = {
  InvalidJson: 'invalid json',
  NotAnObject: 'message must be a json object',
  BinaryNotAccepted: 'binary frames not accepted',
  AuthenticationRequired: 'authentication required',
  InvalidCredentials: 'invalid credentials',
  TokenExpired: 'token expired',
  TokenRevoked: 'token revoked',
  Forbidden: 'forbidden',
  OriginNotAllowed: 'origin not allowed',
  AuthenticationTimeout: 'authentication timeout',
  TooManyConnections: 'too many connections',
  TooManyRequests: 'too many requests',
  GoingAway: 'going away',
  TryAgainLater: 'try again later',
  InternalError: 'internal error',
} as const;

/** One of the fixed reason texts in {@link CloseReason}. */
export type CloseReasonText = (typeof CloseReason)[keyof typeof CloseReason];

/** Close codes after which a client should not reconnect without user action. */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.BadFrame,
  CloseCode.Unauthorized,
  CloseCode.Forbidden,
]);

/**
 * Clamps a close reason to the 123 bytes RFC 6455 §5.5 allows in a close frame,
 * cutting on a character boundary.
 */
export function limitCloseReason(reason: string): string {
  // TextEncoder rather than Buffer: this module also runs in browsers. encodeInto stops
  // before a character that does not fit whole, so a surrogate pair is never split.
  const { read } = new TextEncoder().encodeInto(reason, new Uint8Array(123));
  return read === reason.length ? reason : reason.slice(0, read);
}
