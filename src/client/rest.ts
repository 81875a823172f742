/**
 * A small client for the gateway's token API (SPEC §6): log in, get tickets for
 * WebSockets, log out, and read the caller and their rooms.
 *
 * @module
 */

import { HttpError, UnauthorizedError } from './errors.js';

/** The `fetch` the REST client needs; the global `fetch` fits. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** Options of {@link createRestClient}. */
export interface RestClientOptions {
  /** The gateway's origin, optionally with a path prefix: `https://chat.example.com`. */
  readonly baseUrl: string;
  /**
   * The `fetch` implementation.
   * @default globalThis.fetch
   */
  readonly fetchImpl?: FetchLike;
  /**
   * The `Authorization` scheme; the gateway accepts both, as DRF does.
   * @default 'Bearer'
   */
  readonly scheme?: 'Bearer' | 'Token';
}

/** `POST /api/auth/token` response. */
export interface LoginResult {
  /** The REST token (`pcu_…`), shown once. */
  readonly token: string;
  /** ISO 8601 expiry, or `null` for a token that does not expire. */
  readonly expires_at: string | null;
}

/** `POST /api/auth/ticket` response. */
export interface TicketResult {
  /** A single-use ticket (`pct_…`) for `?ticket=` on a WebSocket URL. */
  readonly ticket: string;
  /** Seconds until the ticket expires. */
  readonly expires_in: number;
}

/** `GET /api/me` response. */
export interface Me {
  readonly id: string | number;
  readonly username: string;
  readonly is_staff: boolean;
}

/** One MultiChat room from `GET /api/rooms`. */
export interface RoomInfo {
  /** The room id; a number and its numeric string name the same room (SPEC §7). */
  readonly id: string | number;
  readonly title: string;
  readonly staff_only?: boolean;
}

/** The REST client returned by {@link createRestClient}. Every method rejects with
 * {@link UnauthorizedError} on `401` and {@link HttpError} on any other non-2xx status. */
export interface RestClient {
  /**
   * Exchanges a username and password for a token. Bad credentials are a `400`
   * ({@link HttpError} with `body.non_field_errors`), as in DRF.
   */
  login(username: string, password: string): Promise<LoginResult>;
  /** Gets a single-use WebSocket ticket for the token's user. */
  ticket(token: string): Promise<TicketResult>;
  /** Revokes the token; its open sockets close with 4401 `token revoked`. */
  logout(token: string): Promise<void>;
  /** The user the token belongs to. */
  me(token: string): Promise<Me>;
  /** The MultiChat rooms the token's user may join. */
  rooms(token: string): Promise<RoomInfo[]>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * Creates a REST client for the gateway's token API.
 *
 * @throws {TypeError} When `baseUrl` is not an absolute `http://` or `https://` URL, or no
 *   `fetch` is available.
 *
 * @example
 * ```ts
 * const rest = createRestClient({ baseUrl: 'https://chat.example.com' });
 * const { token } = await rest.login('alice', 'correct horse');
 * const client = createClient({
 *   url: 'wss://chat.example.com/ws/chat/',
 *   credential: ticketCredential({ fetchTicket: async () => (await rest.ticket(token)).ticket }),
 * });
 * ```
 */
export function createRestClient(options: RestClientOptions): RestClient {
  const {
    baseUrl,
    fetchImpl = globalThis.fetch as FetchLike | undefined,
    scheme = 'Bearer',
  } = options;
  let parsed: URL | undefined;
  try {
    parsed = new URL(baseUrl);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new TypeError('createRestClient: baseUrl must be an absolute http:// or https:// URL');
  }
  if (typeof fetchImpl !== 'function') {
    throw new TypeError('createRestClient: no global fetch; pass fetchImpl');
  }
  const request: FetchLike = fetchImpl;
  // Joined by hand rather than with new URL(path, base), which would drop a path prefix
  // such as https://example.com/chat.
  const root = baseUrl.replace(/\/+$/, '');

  async function call(
    method: 'GET' | 'POST',
    path: string,
    token: string | undefined,
    body?: Record<string, unknown>,
    check?: (payload: unknown) => boolean,
  ): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (token !== undefined) headers['Authorization'] = `${scheme} ${token}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await request(root + path, init);
    const payload = await readBody(response);
    if (response.status === 401) {
      throw new UnauthorizedError('the gateway answered 401', {
        status: response.status,
        body: payload,
      });
    }
    if (!response.ok) throw new HttpError(response.status, payload);
    // A 2xx with the wrong shape is a gateway this client does not understand; say so
    // instead of handing out undefined fields.
    if (check !== undefined && !check(payload)) {
      throw new HttpError(response.status, payload, 'unexpected response body');
    }
    return payload;
  }

  const has =
    (field: string, type: 'string') =>
    (payload: unknown): boolean =>
      isRecord(payload) && typeof payload[field] === type;

  return {
    async login(username, password) {
      const body = { username, password };
      return (await call(
        'POST',
        '/api/auth/token',
        undefined,
        body,
        has('token', 'string'),
      )) as LoginResult;
    },
    async ticket(token) {
      return (await call(
        'POST',
        '/api/auth/ticket',
        token,
        undefined,
        has('ticket', 'string'),
      )) as TicketResult;
    },
    async logout(token) {
      await call('POST', '/api/auth/logout', token);
    },
    async me(token) {
      return (await call('GET', '/api/me', token, undefined, has('username', 'string'))) as Me;
    },
    async rooms(token) {
      // SPEC §6 does not fix the envelope: accept a bare array or `{ rooms: [...] }`.
      const list = (payload: unknown): unknown => (isRecord(payload) ? payload['rooms'] : payload);
      const isRoomList = (payload: unknown): boolean => {
        const rooms = list(payload);
        return Array.isArray(rooms) && rooms.every(isRecord);
      };
      return list(await call('GET', '/api/rooms', token, undefined, isRoomList)) as RoomInfo[];
    },
  };
}
