/**
 * Errors raised by the client SDK. Kept apart from the server's `src/errors.ts` so the
 * browser bundle carries only what the client needs; the shape (a literal-union `code`)
 * is the same, so `switch (err.code)` narrows (STYLE.md practice 4).
 *
 * @module
 */

/** Every code a client SDK error can carry. */
export type ClientErrorCode =
  'ERR_UNAUTHORIZED' | 'ERR_HTTP' | 'ERR_INVALID_MESSAGE' | 'ERR_CONNECTION';

/** Base class of every coded client SDK error. */
export class PortcullisClientError extends Error {
  /** A stable code; see `docs/errors.md`. */
  readonly code: ClientErrorCode;

  constructor(code: ClientErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The user must log in again. Throw it from a `getToken` or `fetchTicket` callback to make
 * the client stop instead of retrying; the REST client throws it for a `401` response.
 *
 * @example
 * ```ts
 * const credential = subprotocolCredential({
 *   getToken: async () => {
 *     const token = localStorage.getItem('token');
 *     if (token === null) throw new UnauthorizedError('not logged in');
 *     return token;
 *   },
 * });
 * ```
 */
export class UnauthorizedError extends PortcullisClientError {
  declare readonly code: 'ERR_UNAUTHORIZED';
  /** The HTTP status when the error comes from a REST response (`401`), otherwise undefined. */
  readonly status: number | undefined;
  /** The parsed response body when the error comes from a REST response. */
  readonly body: unknown;

  constructor(
    message = 'unauthorized',
    options?: ErrorOptions & { status?: number; body?: unknown },
  ) {
    super('ERR_UNAUTHORIZED', message, options);
    this.status = options?.status;
    this.body = options?.body;
  }
}

/** A REST call answered with a non-2xx status other than `401`. */
export class HttpError extends PortcullisClientError {
  declare readonly code: 'ERR_HTTP';
  /** The HTTP status code. */
  readonly status: number;
  /**
   * The parsed JSON body, or the raw text when it was not JSON; for example
   * `{ non_field_errors: [...] }` for a failed login (SPEC §6).
   */
  readonly body: unknown;

  constructor(status: number, body: unknown, message = `HTTP ${status}`) {
    super('ERR_HTTP', message);
    this.status = status;
    this.body = body;
  }
}

/**
 * The server sent a frame the client cannot read (binary, invalid JSON, not an object).
 * Reported through the `error` event; the connection stays open.
 */
export class InvalidMessageError extends PortcullisClientError {
  declare readonly code: 'ERR_INVALID_MESSAGE';
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_MESSAGE', message, options);
  }
}

/** The WebSocket reported an error; a `close` event always follows. */
export class ConnectionError extends PortcullisClientError {
  declare readonly code: 'ERR_CONNECTION';
  constructor(message = 'websocket error', options?: ErrorOptions) {
    super('ERR_CONNECTION', message, options);
  }
}
