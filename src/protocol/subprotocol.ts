/**
 * The bearer-token subprotocol convention (SPEC §3), shared by server and client.
 *
 * @module
 */

/**
 * Prefix of the `Sec-WebSocket-Protocol` entry carrying a bearer token as base64url
 * without padding. Servers never select it; clients offer an app protocol beside it.
 */
export const BEARER_SUBPROTOCOL_PREFIX = 'portcullis.bearer.';

/** True for the bearer entry of an offered subprotocol list. */
export function isBearerSubprotocol(entry: string): boolean {
  return entry.startsWith(BEARER_SUBPROTOCOL_PREFIX);
}
