/**
 * What the client does after a close: the one place that reads close codes (SPEC §5).
 *
 * @module
 */

import { CloseCode, CloseReason } from '../protocol/close-codes.js';

/**
 * The client's decision after a connection closed:
 *
 * - `stop`: do not reconnect; the user or the application must act first.
 * - `refresh`: fetch a fresh credential (`getToken`) and reconnect at once.
 * - `retry`: reconnect after a backoff delay; `rateLimited` raises the delay's floor.
 */
export type CloseAction =
  | { readonly action: 'stop' }
  | { readonly action: 'refresh' }
  | { readonly action: 'retry'; readonly rateLimited: boolean };

const STOP: CloseAction = { action: 'stop' };
const REFRESH: CloseAction = { action: 'refresh' };
const RETRY: CloseAction = { action: 'retry', rateLimited: false };
const RETRY_SLOWLY: CloseAction = { action: 'retry', rateLimited: true };

// RFC 6455 §7.4.1 codes that Portcullis never sends but a browser, `ws` or a proxy may
// report. Named here rather than added to CloseCode, which lists what the server sends.
const NO_STATUS_RECEIVED = 1005;
/** No close frame arrived: the network dropped or the handshake failed (RFC 6455 §7.1.5). */
export const ABNORMAL_CLOSURE = 1006;
const SERVICE_RESTART = 1012;
const BAD_GATEWAY = 1014;

/**
 * Decides what to do after the server (or the network) closed the connection.
 * Every close code Portcullis sends has a case; other codes fall to the default.
 *
 * @param code The close code from the close event.
 * @param reason The close reason text; only 4401 reads it.
 *
 * @example
 * ```ts
 * classifyClose(CloseCode.Unauthorized, CloseReason.TokenExpired); // { action: 'refresh' }
 * classifyClose(CloseCode.Forbidden, CloseReason.OriginNotAllowed); // { action: 'stop' }
 * ```
 */
export function classifyClose(code: number, reason: string): CloseAction {
  switch (code) {
    // The server's application ended the session on purpose (a consumer closed it).
    // Reconnecting would undo that decision, and a consumer that closes at connect
    // would turn it into a loop; a restart or crash shows up as 1001/1006/1011 instead.
    case CloseCode.Normal:
      return STOP;
    // Shutdown or deploy: another process (or the same one, restarted) takes over.
    case CloseCode.GoingAway:
      return RETRY;
    // One oversized frame from this client; the frame is gone and the session is
    // still valid, so a new connection works.
    case CloseCode.MessageTooBig:
      return RETRY;
    // Unexpected server error: transient until proven otherwise, and backoff bounds the cost.
    case CloseCode.InternalError:
      return RETRY;
    // A backing service is down and the server fails closed (SPEC §5): the text says it all.
    case CloseCode.TryAgainLater:
      return RETRY;
    // This client spoke the protocol wrongly; it would do so again on a new connection.
    case CloseCode.BadFrame:
      return STOP;
    // SPEC §5: only `token expired` means "refresh and reconnect". `invalid credentials`,
    // `token revoked` and `authentication required` mean "log in again".
    case CloseCode.Unauthorized:
      return reason === CloseReason.TokenExpired ? REFRESH : STOP;
    // Authenticated but not allowed (or a cross-site origin): retrying cannot change that.
    case CloseCode.Forbidden:
      return STOP;
    // The first-message credential arrived late (a slow getToken or network): a timing
    // failure, not a verdict on the credential, so the same credential may well succeed.
    case CloseCode.AuthenticationTimeout:
      return RETRY;
    // A rate or connection limit: retry, but later than usual so the limit can recover.
    case CloseCode.TooManyRequests:
      return RETRY_SLOWLY;
    // 1006: no close frame; the network dropped, the server crashed, or the handshake
    // failed. 1005: a close frame without a code; Portcullis always sends one, so a proxy
    // or load balancer closed it. 1012, 1014: proxies and other servers restarting or
    // failing upstream.
    case ABNORMAL_CLOSURE:
    case NO_STATUS_RECEIVED:
    case SERVICE_RESTART:
    case BAD_GATEWAY:
      return RETRY;
    // Unknown codes: protocol errors (1002, 1003, 1007, 1008, 1010), a TLS failure (1015)
    // or an application code this SDK does not know. None improves by reconnecting blindly.
    default:
      return STOP;
  }
}

/**
 * True when the client must not reconnect after this close without user action
 * (a new login, a fixed client). The inverse of {@link shouldReconnect}.
 *
 * @example
 * ```ts
 * isFatalClose(CloseCode.Unauthorized, CloseReason.InvalidCredentials); // true
 * isFatalClose(CloseCode.Unauthorized, CloseReason.TokenExpired); // false: refresh
 * ```
 */
export function isFatalClose(code: number, reason: string): boolean {
  return classifyClose(code, reason).action === 'stop';
}

/**
 * True when the client reconnects (after a refresh or a backoff delay) after this close.
 *
 * @example
 * ```ts
 * shouldReconnect(CloseCode.GoingAway, CloseReason.GoingAway); // true
 * ```
 */
export function shouldReconnect(code: number, reason: string): boolean {
  return !isFatalClose(code, reason);
}
