/**
 * Error responses for Fastify that leak nothing: every error becomes a DRF-shaped JSON
 * body (`{"detail": "…"}`, or field errors for invalid input), and a server error becomes
 * `{"detail": "A server error occurred."}` while its message, stack and cause go to the
 * log only (SPEC §6; STYLE.md practice 6: Fastify's default handler sends
 * `error.message` to the client).
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type {
  FastifyBaseLogger,
  FastifyError,
  FastifyInstance,
  FastifyRequest,
  FastifyTypeProvider,
  RawServerDefault,
  FastifyLoggerOptions,
} from 'fastify';
import type { LoggerOptions } from 'pino';
import { AuthenticationError, ServiceUnavailableError } from '../errors.js';
import { REDACTED_PATHS } from '../logging.js';

/**
 * Field errors as Django REST Framework reports them: field name → messages. Errors that
 * concern no single field are under `non_field_errors`; a nested field is named by its
 * dotted path (`address.city`).
 */
export type FieldErrors = Readonly<Record<string, readonly string[]>>;

/** A response body: `{ detail }` or {@link FieldErrors}, as DRF sends them. */
export type ErrorBody = { readonly detail: string } | FieldErrors;

/**
 * Every `detail` text the REST API sends, in one place. Clients may compare against
 * them; they follow DRF's wording where DRF has one.
 */
export const RestDetail = {
  /** 401 on a protected route without a credential. */
  NotAuthenticated: 'Authentication credentials were not provided.',
  /** 401: a credential that no authenticator accepts (unknown, malformed, wrong checksum). */
  InvalidToken: 'Invalid token.',
  /** 401: an expired credential; get a new one (SPEC §5 `token expired`). */
  TokenExpired: 'Token has expired.',
  /** 401: a revoked credential; log in again (SPEC §5 `token revoked`). */
  TokenRevoked: 'Token has been revoked.',
  /** 401: more than one `Authorization` header, which is never resolved by picking one. */
  ConflictingCredentials: 'Invalid token header. Only one Authorization header is allowed.',
  /** 403. */
  PermissionDenied: 'You do not have permission to perform this action.',
  /** 403: tickets and logout need a Portcullis token, not a JWT or another credential. */
  PortcullisTokenRequired: 'This action requires a Portcullis token.',
  /** 400 from `POST /api/auth/token`, under `non_field_errors`. */
  InvalidLogin: 'Unable to log in with provided credentials.',
  /** 400: a field missing from the body. */
  FieldRequired: 'This field is required.',
  /** 400: a body that is not valid JSON. The parser's message is never echoed. */
  ParseError: 'JSON parse error.',
  /** 404. */
  NotFound: 'Not found.',
  /** 413. */
  BodyTooLarge: 'Request body is too large.',
  /** 503: the database or another backing service is down; nothing was decided. */
  ServiceUnavailable: 'Service temporarily unavailable, try again later.',
  /** 500, whatever happened. The details are in the server's log. */
  ServerError: 'A server error occurred.',
} as const;

/** Options of {@link RestError}. */
export interface RestErrorOptions extends ErrorOptions {
  /** Response headers (`WWW-Authenticate`, `Retry-After`, `Allow`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * An error whose response is meant for the client, like DRF's `APIException`: throw it
 * from a handler or hook and the client gets `statusCode` with `{"detail": detail}` (or
 * the field errors). Any other error's message stays on the server.
 *
 * @example
 * ```ts
 * fastify.get('/api/rooms/:id', async (request) => {
 *   const room = await store.getRoom(request.params.id);
 *   if (room === undefined) throw new RestError(404, 'Not found.');
 *   if (room.staffOnly && !request.user.isStaff) throw new RestError(403, RestDetail.PermissionDenied);
 *   return room;
 * });
 * throw new RestError(400, { title: ['This field may not be blank.'] });
 * ```
 * @throws {RangeError} when `statusCode` is not a 4xx or 5xx status.
 */
export class RestError extends Error {
  /** The HTTP status, 400 to 599. */
  readonly statusCode: number;
  /** The JSON body sent to the client. */
  readonly body: ErrorBody;
  readonly headers: Readonly<Record<string, string>>;

  constructor(statusCode: number, detail: string | FieldErrors, options: RestErrorOptions = {}) {
    if (!Number.isInteger(statusCode) || statusCode < 400 || statusCode > 599) {
      throw new RangeError('RestError: statusCode must be an integer from 400 to 599');
    }
    super(typeof detail === 'string' ? detail : 'invalid input', options);
    this.name = 'RestError';
    this.statusCode = statusCode;
    this.body = typeof detail === 'string' ? { detail } : detail;
    this.headers = options.headers ?? {};
  }
}

/**
 * The parts of a Fastify request the error handler reads. Structural, so that instances
 * with any logger or type provider fit.
 */
export interface ErrorRequest {
  readonly id: string;
  readonly headers: IncomingHttpHeaders;
  readonly log: FastifyBaseLogger;
}

/** The parts of a Fastify reply the error handler uses. */
export interface ErrorReply {
  readonly statusCode: number;
  code(statusCode: number): ErrorReply;
  headers(values: Readonly<Record<string, string>>): ErrorReply;
  type(contentType: string): ErrorReply;
  send(payload: unknown): ErrorReply;
}

/** What the client gets for an error; built by {@link errorResponse}. */
interface ErrorResponse {
  readonly statusCode: number;
  readonly body: ErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

/** DRF's default texts, for 4xx errors whose own message is not meant for clients. */
const GENERIC_DETAIL: Readonly<Record<number, string>> = {
  400: 'Bad request.',
  401: 'Incorrect authentication credentials.',
  403: RestDetail.PermissionDenied,
  404: RestDetail.NotFound,
  405: 'Method not allowed.',
  406: 'Could not satisfy the request Accept header.',
  413: RestDetail.BodyTooLarge,
  415: 'Unsupported media type in request.',
  429: 'Request was throttled.',
  503: RestDetail.ServiceUnavailable,
};

function genericDetail(statusCode: number): string {
  if (statusCode >= 500 && statusCode !== 503) return RestDetail.ServerError;
  return GENERIC_DETAIL[statusCode] ?? `${STATUS_CODES[statusCode] ?? 'Error'}.`;
}

/** `WWW-Authenticate` on every 401 (RFC 9110 §15.5.2); `Token` as DRF's TokenAuthentication. */
export const WWW_AUTHENTICATE = 'Token';

/** The `detail` of a 401 for an {@link AuthenticationError}. */
export function authenticationDetail(error: AuthenticationError): string {
  switch (error.code) {
    case 'ERR_TOKEN_EXPIRED':
      return RestDetail.TokenExpired;
    case 'ERR_TOKEN_REVOKED':
      return RestDetail.TokenRevoked;
    case 'ERR_CONFLICTING_CREDENTIALS':
      return RestDetail.ConflictingCredentials;
    case 'ERR_INVALID_CREDENTIALS':
      return RestDetail.InvalidToken;
  }
}

// Only a plain `type/subtype` is echoed back; anything else a client sent stays out of the body.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$/;

function unsupportedMediaType(request: ErrorRequest): string {
  const mediaType = (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim();
  return MEDIA_TYPE.test(mediaType)
    ? `Unsupported media type "${mediaType}" in request.`
    : 'Unsupported media type in request.';
}

/** An Ajv error as Fastify attaches it to `error.validation`. */
interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly message?: string;
}

/** DRF's wording for the JSON-schema keywords routes commonly use. */
function schemaMessage(error: SchemaError): string {
  const limit = error.params['limit'];
  switch (error.keyword) {
    case 'required':
      return RestDetail.FieldRequired;
    case 'type':
      switch (error.params['type']) {
        case 'string':
          return 'Not a valid string.';
        case 'integer':
          return 'A valid integer is required.';
        case 'number':
          return 'A valid number is required.';
        case 'boolean':
          return 'Must be a valid boolean.';
        case 'array':
          return 'Expected a list of items.';
        case 'object':
          return 'Expected a dictionary of items.';
        default:
          return 'Invalid value.';
      }
    case 'minLength':
      return limit === 1
        ? 'This field may not be blank.'
        : `Ensure this field has at least ${String(limit)} characters.`;
    case 'maxLength':
      return `Ensure this field has no more than ${String(limit)} characters.`;
    case 'minimum':
      return `Ensure this value is greater than or equal to ${String(limit)}.`;
    case 'maximum':
      return `Ensure this value is less than or equal to ${String(limit)}.`;
    case 'enum':
      return 'Not a valid choice.';
    case 'additionalProperties':
      return 'Unexpected field.';
    default:
      // Ajv's messages are built from the schema, never from the input.
      return error.message ?? 'Invalid value.';
  }
}

function isSchemaError(value: unknown): value is SchemaError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as SchemaError).keyword === 'string' &&
    typeof (value as SchemaError).instancePath === 'string' &&
    typeof (value as SchemaError).params === 'object'
  );
}

/** Field errors from Fastify's (Ajv) validation errors, keyed as DRF keys them. */
export function fieldErrorsFromSchema(errors: readonly unknown[]): FieldErrors {
  const fields: Record<string, string[]> = {};
  for (const error of errors) {
    if (!isSchemaError(error)) continue;
    const path = error.instancePath
      .split('/')
      .slice(1)
      .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'));
    const missing = error.params['missingProperty'];
    if (error.keyword === 'required' && typeof missing === 'string') path.push(missing);
    const additional = error.params['additionalProperty'];
    if (error.keyword === 'additionalProperties' && typeof additional === 'string')
      path.push(additional);
    const key = path.length === 0 ? 'non_field_errors' : path.join('.');
    (fields[key] ??= []).push(schemaMessage(error));
  }
  return Object.keys(fields).length === 0 ? { non_field_errors: ['Invalid input.'] } : fields;
}

function statusOf(error: Partial<FastifyError> & { status?: unknown }, reply: ErrorReply): number {
  const status = error.statusCode ?? error.status;
  if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599)
    return status;
  // `reply.code(403); throw new Error()` means 403, as in Fastify's own handler.
  return reply.statusCode >= 400 ? reply.statusCode : 500;
}

/**
 * What the client gets for `error`: status, body and headers. Only {@link RestError}s
 * and errors this module knows (validation, body parsing, authentication, unavailable
 * services) say anything specific; every other 4xx gets DRF's generic text for its
 * status, and every 5xx `A server error occurred.`.
 */
export function errorResponse(
  error: unknown,
  request: ErrorRequest,
  reply: ErrorReply,
): ErrorResponse {
  const none = {};
  if (error instanceof RestError) {
    const headers =
      error.statusCode === 401
        ? { 'WWW-Authenticate': WWW_AUTHENTICATE, ...error.headers }
        : error.headers;
    return { statusCode: error.statusCode, body: error.body, headers };
  }
  if (error instanceof ServiceUnavailableError) {
    return { statusCode: 503, body: { detail: RestDetail.ServiceUnavailable }, headers: none };
  }
  if (error instanceof AuthenticationError) {
    return {
      statusCode: 401,
      body: { detail: authenticationDetail(error) },
      headers: { 'WWW-Authenticate': WWW_AUTHENTICATE },
    };
  }
  if (typeof error !== 'object' || error === null) {
    return { statusCode: 500, body: { detail: RestDetail.ServerError }, headers: none };
  }
  const fastifyError = error as Partial<FastifyError>;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { statusCode: 413, body: { detail: RestDetail.BodyTooLarge }, headers: none };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { statusCode: 415, body: { detail: unsupportedMediaType(request) }, headers: none };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { statusCode: 400, body: { detail: RestDetail.ParseError }, headers: none };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        statusCode: 400,
        body: { detail: 'Request body size did not match Content-Length.' },
        headers: none,
      };
  }
  const statusCode = statusOf(fastifyError, reply);
  if (statusCode === 400 && Array.isArray(fastifyError.validation)) {
    return { statusCode, body: fieldErrorsFromSchema(fastifyError.validation), headers: none };
  }
  if (error instanceof SyntaxError && statusCode === 400) {
    // A custom content-type parser that threw: its message may quote the body.
    return { statusCode, body: { detail: RestDetail.ParseError }, headers: none };
  }
  return {
    statusCode,
    body: { detail: genericDetail(statusCode) },
    headers: statusCode === 401 ? { 'WWW-Authenticate': WWW_AUTHENTICATE } : none,
  };
}

/** Options of {@link installErrorHandlers} and {@link restErrorHandler}. */
export interface ErrorHandlerOptions {
  /**
   * Where server errors are logged, with their message, stack and cause (never in the
   * response). Credentials are redacted when it was made with {@link restLoggerOptions}
   * or `defaultLogger()`.
   * @default the request's logger (`request.log`)
   */
  readonly logger?: FastifyBaseLogger;
  /**
   * Also answer unknown routes with `404 {"detail": "Not found."}`. Fastify allows one
   * not-found handler per route prefix: turn this off when the app sets its own.
   * @default true
   */
  readonly notFound?: boolean;
}

/** The reply for an error that `errorResponse` mapped; the detail goes to the log. */
function sendError(
  error: unknown,
  request: ErrorRequest,
  reply: ErrorReply,
  logger: FastifyBaseLogger | undefined,
): ErrorReply {
  const response = errorResponse(error, request, reply);
  const log = logger ?? request.log;
  if (response.statusCode >= 500) {
    log.error({ err: error, reqId: request.id }, 'request failed');
  } else {
    log.debug(
      { err: error, reqId: request.id, statusCode: response.statusCode },
      'request refused',
    );
  }
  return reply
    .code(response.statusCode)
    .headers(response.headers)
    .type('application/json; charset=utf-8')
    .send(response.body);
}

/**
 * An error handler for `fastify.setErrorHandler`: see {@link errorResponse} for what the
 * client gets. Server errors are logged at `error` level with every detail; refused
 * requests at `debug`.
 *
 * @example
 * ```ts
 * fastify.setErrorHandler(restErrorHandler({ logger }));
 * ```
 */
export function restErrorHandler(
  options: Omit<ErrorHandlerOptions, 'notFound'> = {},
): (error: unknown, request: ErrorRequest, reply: ErrorReply) => ErrorReply {
  const { logger } = options;
  return (error, request, reply) => sendError(error, request, reply, logger);
}

/**
 * Installs the no-leak error handler, and a `{"detail": "Not found."}` not-found handler,
 * on a Fastify instance and the plugins registered inside it. The `portcullisRest` plugin
 * does this for its own routes; call it on the root instance to give the whole app the
 * same error bodies.
 *
 * @example
 * ```ts
 * const app = Fastify({ logger: restLoggerOptions() });
 * installErrorHandlers(app);
 * await app.register(portcullisRest, { store, authenticators });
 * ```
 * @throws {Error} from Fastify when this scope already has an error handler or a
 *   not-found handler (pass `notFound: false` for the latter).
 */
export function installErrorHandlers<
  Logger extends FastifyBaseLogger,
  TypeProvider extends FastifyTypeProvider,
>(
  fastify: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger, TypeProvider>,
  options: ErrorHandlerOptions = {},
): void {
  const { logger, notFound = true } = options;
  fastify.setErrorHandler((error, request, reply) => sendError(error, request, reply, logger));
  if (notFound) {
    fastify.setNotFoundHandler((_request, reply) =>
      reply.code(404).type('application/json; charset=utf-8').send({ detail: RestDetail.NotFound }),
    );
  }
}

// Query parameters that may carry a credential: blanked in logged URLs (SPEC §3).
const SECRET_PARAMETERS = new Set([
  'token',
  'ticket',
  'key',
  'password',
  'access_token',
  'jwt',
  'auth',
]);

/**
 * `url` with the value of every credential-bearing query parameter (`token`, `ticket`,
 * `key`, `password`, `access_token`, `jwt`, `auth`) replaced by `[redacted]`; the rest of
 * the URL is left as sent.
 *
 * @example
 * ```ts
 * redactUrl('/ws/chat/?ticket=pct_abc&room=1'); // '/ws/chat/?ticket=[redacted]&room=1'
 * ```
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const pairs = url
    .slice(queryStart + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const rawName = equals === -1 ? pair : pair.slice(0, equals);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replaceAll('+', ' '));
      } catch {
        // A malformed escape is matched as sent.
      }
      return SECRET_PARAMETERS.has(name.toLowerCase()) ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, queryStart)}?${pairs.join('&')}`;
}

/**
 * A Fastify `logger` option that keeps credentials out of logs: the `Authorization` and
 * `Cookie` headers, `token`/`password`/`ticket` fields and credential query parameters are
 * redacted even if a handler logs a whole request or body. Pass it as
 * `Fastify({ logger: restLoggerOptions() })`; add a `stream` or `transport` to it as needed.
 *
 * @example
 * ```ts
 * const app = Fastify({ logger: { ...restLoggerOptions('info'), stream: process.stderr } });
 * ```
 */
export function restLoggerOptions(level = 'info'): FastifyLoggerOptions & LoggerOptions {
  return {
    level,
    redact: {
      paths: [
        ...REDACTED_PATHS,
        'req.headers["x-api-key"]',
        'headers["x-api-key"]',
        'body.password',
        'body.token',
        'body.ticket',
        'res.headers["set-cookie"]',
      ],
      censor: '[redacted]',
    },
    serializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactUrl(request.url),
        host: request.host,
        remoteAddress: request.ip,
        ...(request.socket.remotePort === undefined
          ? {}
          : { remotePort: request.socket.remotePort }),
      }),
    },
  };
}
