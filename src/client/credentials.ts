/**
 * Credential strategies: how the client carries the REST credential on each connection
 * attempt (SPEC §3). Each factory returns a small {@link Credential} object that
 * {@link createClient} consults before every connection attempt.
 *
 * @module
 */

// Type-only: the parser in that module imports server errors the browser bundle must not carry.
import type { AuthFrame } from '../protocol/messages.js';

/** The credential transports the client can use; SPEC §3 describes each one's trade-off. */
export type CredentialMethod = 'ticket' | 'subprotocol' | 'first-message' | 'cookie' | 'header';

/**
 * Returns the current REST token (a `pcu_…` token or a JWT). The client calls it only when
 * it needs a token: at the first connection, after the server closed with 4401
 * `token expired`, and from {@link PortcullisClient.refreshCredential}. Between those,
 * the last token is reused. Throw {@link UnauthorizedError} to stop the client.
 */
export type GetToken = () => string | Promise<string>;

/** Returns a fresh single-use ticket, typically from `POST /api/auth/ticket`. */
export type FetchTicket = () => string | Promise<string>;

/** What a credential strategy is given before a connection attempt. */
export interface CredentialRequest {
  /** The WebSocket URL for this attempt, before the strategy changes it. */
  readonly url: string;
  /** The application subprotocols from the client options. */
  readonly protocols: readonly string[];
  /**
   * The current token: the cached one, or a new one from the strategy's `getToken`
   * when none is cached or a refresh is due. Rejects when the strategy has no `getToken`.
   */
  token(): Promise<string>;
}

/** How one connection attempt is made: what a strategy returns from `prepare`. */
export interface ConnectionPlan {
  readonly url: string;
  readonly protocols: readonly string[];
  /** Handshake headers; only a Node.js `webSocketImpl` such as `ws` can send them. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A frame sent before anything else once the socket opens. */
  readonly firstFrame?: AuthFrame;
}

/**
 * A credential strategy. Use one of the factories in this module, or implement the
 * interface for a custom transport.
 */
export interface Credential {
  /** Which transport the strategy uses. */
  readonly method: CredentialMethod;
  /** Where tokens come from, for strategies that carry a token. */
  readonly getToken?: GetToken;
  /** True when `prepare` returns headers, which browsers cannot send on a WebSocket. */
  readonly usesHeaders?: boolean;
  /** Called before every connection attempt, including reconnects. */
  prepare(request: CredentialRequest): Promise<ConnectionPlan>;
}

/** The subprotocol prefix that marks a bearer token (SPEC §3). */
export { BEARER_SUBPROTOCOL_PREFIX as BEARER_PROTOCOL_PREFIX } from '../protocol/subprotocol.js';
import { BEARER_SUBPROTOCOL_PREFIX as BEARER_PROTOCOL_PREFIX } from '../protocol/subprotocol.js';

function requireFunction(factory: string, name: string, value: unknown): void {
  if (typeof value !== 'function') {
    throw new TypeError(`${factory}: ${name} must be a function`);
  }
}

/**
 * Base64url of the UTF-8 bytes of `text`, without `=` padding (RFC 4648 §5), using only
 * APIs that browsers and Node.js share.
 */
export function base64UrlEncode(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  // One code unit per byte: btoa only accepts Latin-1, so it never sees the UTF-16 text.
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The `Sec-WebSocket-Protocol` entry that carries `token` (SPEC §3).
 *
 * @example
 * ```ts
 * bearerSubprotocol('pcu_abc'); // 'portcullis.bearer.cGN1X2FiYw'
 * ```
 */
export function bearerSubprotocol(token: string): string {
  return BEARER_PROTOCOL_PREFIX + base64UrlEncode(token);
}

/** Options of {@link ticketCredential}. */
export interface TicketCredentialOptions {
  /**
   * Fetches a new ticket. Called before every connection attempt, because a ticket is
   * single use and lives 30 s (SPEC §4). Throw {@link UnauthorizedError} to stop the client.
   */
  readonly fetchTicket: FetchTicket;
}

/**
 * Sends a single-use ticket as `?ticket=<t>` on the WebSocket URL. Works in every
 * browser; the URL may reach proxy logs, which is why the ticket is short-lived and
 * single use rather than the REST token itself.
 *
 * @throws {TypeError} When `fetchTicket` is not a function.
 *
 * @example
 * ```ts
 * const rest = createRestClient({ baseUrl: 'https://chat.example.com' });
 * const credential = ticketCredential({
 *   fetchTicket: async () => (await rest.ticket(token)).ticket,
 * });
 * ```
 */
export function ticketCredential(options: TicketCredentialOptions): Credential {
  const { fetchTicket } = options;
  requireFunction('ticketCredential', 'fetchTicket', fetchTicket);
  return {
    method: 'ticket',
    async prepare(request) {
      const ticket = await fetchTicket();
      const url = new URL(request.url);
      url.searchParams.set('ticket', ticket);
      return { url: url.toString(), protocols: request.protocols };
    },
  };
}

/** Options shared by the strategies that carry a token. */
export interface TokenCredentialOptions {
  /** Returns the current token; see {@link GetToken} for when it is called. */
  readonly getToken: GetToken;
}

/**
 * Offers `portcullis.bearer.<base64url(token)>` next to the application subprotocols.
 * Works in browsers, keeps the token out of URLs, and the server never selects or echoes
 * the bearer entry. {@link createClient} requires at least one application protocol with
 * it, because a browser fails the handshake when it offered protocols and the server
 * selected none (SPEC §3).
 *
 * @throws {TypeError} When `getToken` is not a function.
 *
 * @example
 * ```ts
 * const client = createClient({
 *   url: 'wss://chat.example.com/ws/chat/',
 *   protocols: ['multichat'],
 *   credential: subprotocolCredential({ getToken: () => session.token }),
 * });
 * ```
 */
export function subprotocolCredential(options: TokenCredentialOptions): Credential {
  const { getToken } = options;
  requireFunction('subprotocolCredential', 'getToken', getToken);
  return {
    method: 'subprotocol',
    getToken,
    async prepare(request) {
      const token = await request.token();
      return { url: request.url, protocols: [...request.protocols, bearerSubprotocol(token)] };
    },
  };
}

/**
 * Sends `{"type":"auth","token":"<t>"}` as the first frame after the socket opens, as
 * graphql-ws does with `connection_init`. Works everywhere and keeps the token out of URLs
 * and handshake headers; the server waits at most 5 s for the frame (then closes 4408).
 *
 * @throws {TypeError} When `getToken` is not a function.
 *
 * @example
 * ```ts
 * const credential = firstMessageCredential({ getToken: () => session.token });
 * ```
 */
export function firstMessageCredential(options: TokenCredentialOptions): Credential {
  const { getToken } = options;
  requireFunction('firstMessageCredential', 'getToken', getToken);
  return {
    method: 'first-message',
    getToken,
    async prepare(request) {
      const token = await request.token();
      return {
        url: request.url,
        protocols: request.protocols,
        firstFrame: { type: 'auth', token },
      };
    },
  };
}

/** Options of {@link cookieCredential}. */
export interface CookieCredentialOptions {
  /**
   * For Node.js clients only: a token to send as a `Cookie` header, as a mobile client
   * does by hand. Leave it out in browsers, which send their cookies themselves.
   */
  readonly getToken?: GetToken;
  /**
   * The cookie name when `getToken` is set.
   * @default 'key'
   */
  readonly name?: string;
}

/**
 * Relies on cookies. In a browser there is nothing to do: the browser sends the site's
 * cookies with the handshake, and the server checks `Origin` against its allow-list to stop
 * cross-site hijacking (SPEC §3). On Node.js, pass `getToken` to send `Cookie: key=<token>`.
 *
 * @throws {TypeError} When `getToken` is given and is not a function.
 *
 * @example
 * ```ts
 * // Browser, same site as the gateway:
 * const client = createClient({ url: 'wss://chat.example.com/ws/chat/', credential: cookieCredential() });
 * ```
 */
export function cookieCredential(options: CookieCredentialOptions = {}): Credential {
  const { getToken, name = 'key' } = options;
  if (getToken === undefined) {
    return {
      method: 'cookie',
      prepare: (request) => Promise.resolve({ url: request.url, protocols: request.protocols }),
    };
  }
  requireFunction('cookieCredential', 'getToken', getToken);
  return {
    method: 'cookie',
    getToken,
    usesHeaders: true,
    async prepare(request) {
      const token = await request.token();
      return {
        url: request.url,
        protocols: request.protocols,
        headers: { Cookie: `${name}=${token}` },
      };
    },
  };
}

/** Options of {@link headerCredential}. */
export interface HeaderCredentialOptions extends TokenCredentialOptions {
  /**
   * The authorization scheme; the server accepts both, as DRF does (SPEC §6).
   * @default 'Bearer'
   */
  readonly scheme?: 'Bearer' | 'Token';
}

/**
 * Sends `Authorization: Bearer <token>` on the handshake. **Node.js only**: browsers
 * cannot set headers on a WebSocket, so {@link createClient} requires a `webSocketImpl`
 * that accepts a `headers` option (such as `ws`'s `WebSocket`) with this strategy.
 *
 * @throws {TypeError} When `getToken` is not a function.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'ws';
 * const client = createClient({
 *   url: 'ws://127.0.0.1:8000/ws/bench/',
 *   webSocketImpl: WebSocket,
 *   credential: headerCredential({ getToken: () => process.env.PORTCULLIS_TOKEN ?? '' }),
 * });
 * ```
 */
export function headerCredential(options: HeaderCredentialOptions): Credential {
  const { getToken, scheme = 'Bearer' } = options;
  requireFunction('headerCredential', 'getToken', getToken);
  return {
    method: 'header',
    getToken,
    usesHeaders: true,
    async prepare(request) {
      const token = await request.token();
      return {
        url: request.url,
        protocols: request.protocols,
        headers: { Authorization: `${scheme} ${token}` },
      };
    },
  };
}
