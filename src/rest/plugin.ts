/**
 * The REST side of Portcullis as a Fastify plugin: `Authorization: Token|Bearer` header
 * authentication through the same authenticator chain as the WebSockets, so
 * `request.user` is the same user object `scope.user` is, and the token API of SPEC §6 in
 * Django REST Framework's shapes.
 *
 * @module
 */
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  HTTPMethods,
} from 'fastify';
import { Accounts } from '../auth/accounts.js';
import type { Authenticator, AuthResult } from '../auth/authenticator.js';
import type { ScryptParams } from '../auth/passwords.js';
import type { AttemptLimiter } from '../auth/rate-limit.js';
import { authenticateWithChain } from '../auth/chain.js';
import { findCredentials, type CredentialTransportOptions } from '../auth/credentials.js';
import { looksLikeTicket } from '../auth/tickets.js';
import { ANONYMOUS_USER, type AuthInfo, type User } from '../auth/user.js';
import { AuthenticationError, ServiceUnavailableError } from '../errors.js';
import { createScope, headerValues } from '../scope.js';
import {
  authenticationDetail,
  installErrorHandlers,
  RestDetail,
  RestError,
} from './error-handler.js';
import { registerAuthRoutes } from './routes/auth.js';
import type { ResolvedRateLimit, RestRevoker, RestStore, RouteContext } from './routes/context.js';
import { refuse } from './routes/guards.js';
import { registerMeRoute } from './routes/me.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who sent the request: the user of its `Authorization` credential, or
     * `ANONYMOUS_USER` (`isAnonymous: true`) without one. Set by `portcullisRest` before
     * any other hook of the routes it covers; the same object a WebSocket's `scope.user` is.
     */
    user: User;
    /** How {@link FastifyRequest.user} was authenticated (`method: 'header'`), or `null` when anonymous. */
    auth: AuthInfo | null;
  }
  interface FastifyContextConfig {
    /**
     * `false` turns `portcullisRest`'s header authentication off for this route, which
     * then reads its own `Authorization` header (a server API key, say) and sees
     * `request.user` anonymous, like a DRF view with `authentication_classes = []`.
     * @default true
     */
    portcullisAuth?: boolean;
  }
}

/** The WebSocket auth middleware's revocation methods (`authMiddleware` returns them). */
export interface SocketRevoker {
  revokeCredential(credentialId: string): Promise<void>;
  revokeUser(userId: string): Promise<void>;
}

/** Options of the login throttle. */
export interface LoginRateLimitOptions {
  /**
   * `POST auth/token` attempts allowed per client address (`request.ip`: set Fastify's
   * `trustProxy` behind a proxy) per window; past it, `429` with `Retry-After`. Every
   * attempt counts, so a flood also cannot burn CPU on password hashing. `0`: no limit.
   * @default 10
   */
  readonly max?: number;
  /** @default 60_000 (1 minute) */
  readonly windowMs?: number;
  /**
   * Counts attempts elsewhere than in this process: a `RedisAttemptLimiter` shares one
   * budget among every process of a deployment (then `max` and `windowMs` are its own).
   */
  readonly limiter?: AttemptLimiter;
}

/** Options of {@link portcullisRest}. */
export interface PortcullisRestOptions {
  /** Users, tokens and tickets; `openStore(url)` gives one. */
  readonly store: RestStore;
  /**
   * The chain that verifies `Authorization` credentials: pass the same authenticator
   * objects as the WebSocket auth middleware (for example `tokenAuthenticator({ store })`
   * then `jwtAuthenticator(…)`), so both sides share their caches and answer "who is
   * this?" alike. The first that recognises a credential decides; a recognised but
   * invalid credential is a 401, never anonymous (SPEC §3).
   */
  readonly authenticators: readonly Authenticator[];
  /**
   * Closes live WebSockets when a token is revoked here: logout closes the sockets of its
   * token, logout-all every socket of the user (4401 `token revoked`). Pass the auth
   * middleware itself (`revoke: auth`) or `{ credential, user }` functions. Without it,
   * REST revocations stop new handshakes but leave open sockets until they expire.
   */
  readonly revoke?: RestRevoker | SocketRevoker;
  /**
   * Where the routes are mounted: `''` or a path such as `/api` (no trailing `/`).
   * `request.user` is set on every route of the registering scope whatever the prefix.
   * @default '/api'
   */
  readonly prefix?: string;
  /**
   * Lifetime of tokens issued by `POST auth/token`, in ms; `null` for tokens that never expire.
   * @default 2_592_000_000 (30 days)
   */
  readonly tokenTtlMs?: number | null;
  /**
   * The scrypt cost passwords were hashed with (`Accounts`' `passwordParams`), so that a
   * login for an unknown username costs as long as one for a real user.
   * @default DEFAULT_SCRYPT_PARAMS
   */
  readonly passwordParams?: ScryptParams;
  /** Throttling of `POST auth/token`. */
  readonly loginRateLimit?: LoginRateLimitOptions;
  /**
   * Throttling of `POST auth/ticket`, per user: past `max` tickets per `windowMs`, `429`
   * with `Retry-After`. `max: 0` switches it off.
   * @default { max: 30, windowMs: 60_000 }
   */
  readonly ticketRateLimit?: LoginRateLimitOptions;
  /**
   * Where the plugin logs (server errors with their details, throttling, revocations that
   * could not reach the sockets). It never logs a credential.
   * @default each request's `request.log`
   */
  readonly logger?: FastifyBaseLogger;
  /** The clock of the login throttle and of token expiry, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

/** Only the `Authorization` header: REST reads no cookies (no CSRF exposure) and no query. */
const HEADER_ONLY: Required<CredentialTransportOptions> = {
  header: true,
  cookie: false,
  ticket: false,
  subprotocol: false,
  firstMessage: false,
  query: false,
};

const STORE_METHODS = [
  'findLogin',
  'insertToken',
  'insertTicket',
  'revokeToken',
  'revokeUserTokens',
] as const;

function isPositiveInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function resolveRateLimit(
  option: string,
  limit: LoginRateLimitOptions,
  defaultMax: number,
): ResolvedRateLimit {
  const { max = defaultMax, windowMs = 60_000 /* 1 minute */, limiter } = limit;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new RangeError(`portcullisRest: options.${option}.max must be a non-negative integer`);
  }
  if (!isPositiveInteger(windowMs)) {
    throw new RangeError(`portcullisRest: options.${option}.windowMs must be a positive integer`);
  }
  if (limiter !== undefined && typeof limiter.hit !== 'function') {
    throw new TypeError(`portcullisRest: options.${option}.limiter must have a hit() method`);
  }
  return limiter === undefined ? { max, windowMs } : { max, windowMs, limiter };
}

function resolveRevoker(revoke: PortcullisRestOptions['revoke']): RestRevoker | undefined {
  if (revoke === undefined) return undefined;
  // The auth middleware is a function with methods.
  if ((typeof revoke === 'object' || typeof revoke === 'function') && revoke !== null) {
    if ('revokeCredential' in revoke && typeof revoke.revokeCredential === 'function') {
      if (typeof revoke.revokeUser === 'function') {
        return {
          credential: (tokenId) => revoke.revokeCredential(tokenId),
          user: (userId) => revoke.revokeUser(userId),
        };
      }
    } else if (
      'credential' in revoke &&
      typeof revoke.credential === 'function' &&
      typeof revoke.user === 'function'
    ) {
      return revoke;
    }
  }
  throw new TypeError(
    'portcullisRest: options.revoke must be the auth middleware or { credential(tokenId), user(userId) }',
  );
}

/** Checks the options once, at registration (STYLE.md practice 4). */
function resolveOptions(options: PortcullisRestOptions): RouteContext & { prefix: string } {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(
      'portcullisRest: options must be an object with a store and authenticators',
    );
  }
  const {
    store,
    authenticators,
    revoke,
    prefix = '/api',
    tokenTtlMs,
    passwordParams,
    loginRateLimit = {},
    ticketRateLimit = {},
    logger,
    now = Date.now,
  } = options;
  if (
    typeof store !== 'object' ||
    store === null ||
    STORE_METHODS.some((method) => typeof store[method] !== 'function')
  ) {
    throw new TypeError(
      `portcullisRest: options.store must be a Store (${STORE_METHODS.join(', ')})`,
    );
  }
  if (
    !Array.isArray(authenticators) ||
    authenticators.length === 0 ||
    authenticators.some((entry) => typeof entry?.authenticate !== 'function')
  ) {
    throw new TypeError(
      'portcullisRest: options.authenticators must be a non-empty array of authenticators',
    );
  }
  if (typeof prefix !== 'string' || !(prefix === '' || /^\/[^\s?#]*[^\s?#/]$/.test(prefix))) {
    throw new TypeError(
      "portcullisRest: options.prefix must be '' or a path starting with '/' and not ending with '/'",
    );
  }
  if (tokenTtlMs !== undefined && tokenTtlMs !== null && !isPositiveInteger(tokenTtlMs)) {
    throw new RangeError('portcullisRest: options.tokenTtlMs must be a positive integer, or null');
  }
  if (typeof now !== 'function')
    throw new TypeError('portcullisRest: options.now must be a function');
  const accounts = new Accounts(store, {
    ...(tokenTtlMs === undefined ? {} : { tokenTtlMs }),
    ...(passwordParams === undefined ? {} : { passwordParams }),
    now,
  });
  const login = resolveRateLimit('loginRateLimit', loginRateLimit, 10);
  const tickets = resolveRateLimit('ticketRateLimit', ticketRateLimit, 30);
  return {
    store,
    accounts,
    authenticators,
    revoke: resolveRevoker(revoke),
    prefix,
    loginRateLimit: login,
    ticketRateLimit: tickets,
    logger,
    now,
  };
}

interface Verified {
  readonly result: AuthResult;
  readonly authenticator: string;
}

/**
 * The credential of `Authorization` headers, verified by the chain; `undefined` when they
 * carry no Token/Bearer credential (another scheme, such as Basic, is not ours to judge).
 */
async function verifyHeaders(
  values: readonly string[],
  authenticators: readonly Authenticator[],
): Promise<Verified | undefined> {
  // The WebSocket transports' own parser: the same schemes, the same refusal of two headers.
  const scope = createScope({ path: '/', headers: { authorization: values } });
  const credential = findCredentials(scope, HEADER_ONLY).credentials[0]?.value;
  if (credential === undefined) return undefined;
  // Redeeming a ticket here would spend it; tickets exist for handshakes only (SPEC §3).
  if (looksLikeTicket(credential)) {
    throw new AuthenticationError(
      'ERR_INVALID_CREDENTIALS',
      'tickets are for WebSocket handshakes',
    );
  }
  return authenticateWithChain(authenticators, credential, { transport: 'header' });
}

/**
 * The `onRequest` hook that sets `request.user` and `request.auth`. Callback-style so
 * that a refusal ends the request here (see `routes/guards.ts`).
 */
function authenticationHook(context: RouteContext) {
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    request.user = ANONYMOUS_USER;
    request.auth = null;
    // Every line as sent: Node keeps only the first Authorization in `request.headers`.
    const values = headerValues(request.raw.rawHeaders, 'authorization');
    if (values.length === 0 || request.routeOptions.config.portcullisAuth === false) {
      done();
      return;
    }
    verifyHeaders(values, context.authenticators).then(
      (verified) => {
        if (verified !== undefined) {
          const { result, authenticator } = verified;
          request.user = result.user;
          request.auth = {
            method: 'header',
            authenticator,
            credentialId: result.credentialId,
            expiresAt: result.expiresAt,
          };
        }
        done();
      },
      (error: unknown) => {
        const log = context.logger ?? request.log;
        if (error instanceof AuthenticationError) {
          log.info({ reqId: request.id, code: error.code }, 'REST authentication failed');
          refuse(reply, 401, { detail: authenticationDetail(error) });
        } else if (error instanceof ServiceUnavailableError) {
          log.warn({ reqId: request.id, err: error }, 'cannot authenticate: backing service down');
          refuse(reply, 503, { detail: RestDetail.ServiceUnavailable });
        } else {
          log.error({ reqId: request.id, err: error }, 'authentication error');
          refuse(reply, 500, { detail: RestDetail.ServerError });
        }
      },
    );
  };
}

/** The routes and the methods each allows; any other method gets DRF's 405. */
const ROUTE_METHODS: readonly (readonly [url: string, allowed: readonly HTTPMethods[]])[] = [
  ['/auth/token', ['POST']],
  ['/auth/ticket', ['POST']],
  ['/auth/logout', ['POST']],
  ['/auth/logout-all', ['POST']],
  ['/me', ['GET', 'HEAD']],
];
// OPTIONS is left alone: CORS plugins answer preflights with their own `OPTIONS *` route.
const ANSWERED_METHODS: readonly HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** The encapsulated part: routes, body parsers and error handlers that touch nothing else. */
function routesPlugin(context: RouteContext, prefix: string): FastifyPluginAsync {
  return async (fastify: FastifyInstance) => {
    installErrorHandlers(fastify, {
      ...(context.logger === undefined ? {} : { logger: context.logger }),
      // Fastify has one not-found handler per prefix; at the root it is the app's to set.
      notFound: prefix !== '',
    });

    // DRF reads an empty JSON body as empty data, so body-less POSTs from clients that
    // always send `Content-Type: application/json` work; anything else parses as Fastify's
    // default (prototype poisoning refused).
    const parseJson = fastify.getDefaultJsonParser('error', 'error');
    fastify.removeContentTypeParser('application/json');
    fastify.addContentTypeParser(
      'application/json',
      { parseAs: 'string' },
      (request, body, done) => {
        const text = body.toString();
        if (text === '') done(null, undefined);
        else parseJson(request, text, done);
      },
    );
    // DRF answers 415 to text bodies; Fastify would hand them to the validator as strings.
    fastify.removeContentTypeParser('text/plain');
    // DRF's obtain_auth_token also takes HTML-form bodies (`curl -d username=…`).
    fastify.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string' },
      (_request, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body.toString())));
      },
    );

    registerAuthRoutes(fastify, context);
    registerMeRoute(fastify);

    for (const [url, allowed] of ROUTE_METHODS) {
      fastify.route({
        method: ANSWERED_METHODS.filter((method) => !allowed.includes(method)),
        url,
        handler: async (request) => {
          throw new RestError(405, `Method "${request.method}" not allowed.`, {
            headers: { Allow: allowed.join(', ') },
          });
        },
      });
    }
  };
}

async function plugin(fastify: FastifyInstance, options: PortcullisRestOptions): Promise<void> {
  const { prefix, ...context } = resolveOptions(options);
  if (fastify.hasRequestDecorator('user') || fastify.hasRequestDecorator('auth')) {
    throw new Error(
      'portcullisRest: request.user or request.auth is already decorated; register the plugin once, and not beside another plugin that sets request.user (such as @fastify/jwt)',
    );
  }
  fastify.decorateRequest('user', null, []);
  fastify.decorateRequest('auth', null, []);
  fastify.addHook('onRequest', authenticationHook(context));
  await fastify.register(routesPlugin(context, prefix), prefix === '' ? {} : { prefix });
}

/**
 * The Portcullis REST plugin for Fastify 5.
 *
 * It is not encapsulated (like a `fastify-plugin` plugin): on every route of the scope it
 * is registered in, it authenticates `Authorization: Token <key>` and `Authorization:
 * Bearer <key or JWT>` with `options.authenticators` and sets `request.user` (the same
 * user object a WebSocket's `scope.user` is; `ANONYMOUS_USER` without a header) and
 * `request.auth`. A recognised but invalid credential, or two `Authorization` headers,
 * gets `401 {"detail": …}` with `WWW-Authenticate: Token`; a database outage gets `503`
 * (fail closed). Guard your own routes with {@link requireUser}; a route that reads its
 * own `Authorization` header (an API key) opts out with `config: { portcullisAuth: false }`.
 *
 * Under `prefix` (default `/api`) it serves, with DRF's bodies and its own no-leak error
 * handler (see `installErrorHandlers`):
 *
 * | route | answer |
 * |---|---|
 * | `POST auth/token` `{username, password}` (JSON or form) | `200 {"token", "expires_at"}`; `400 {"non_field_errors": ["Unable to log in with provided credentials."]}`; `400 {"username": ["This field is required."]}`; `429` past the login rate limit |
 * | `POST auth/ticket` | `200 {"ticket", "expires_in"}`: a single-use ticket for `?ticket=` on a WebSocket, tied to the caller's token |
 * | `POST auth/logout` | `204`: the caller's token is revoked and its sockets close 4401 `token revoked` |
 * | `POST auth/logout-all` | `204`: every token of the caller is revoked and every socket of the caller closes |
 * | `GET me` | `{"id", "username", "is_staff"}` |
 *
 * Tickets and logout need a Portcullis token (`403` for a JWT: a JWT cannot be revoked
 * and has no token row for a ticket to be tied to). A ticket sent as a header credential
 * is refused (401) without being spent. Credentials are read from the `Authorization`
 * header only: no cookies (no CSRF exposure) and no query string.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import {
 *   attachWebSocket, authMiddleware, jwtAuthenticator, openStore, route,
 *   ticketAuthenticator, tokenAuthenticator, urlRouter,
 * } from 'portcullis';
 * import { installErrorHandlers, portcullisRest, requireUser, restLoggerOptions } from 'portcullis/fastify';
 *
 * const store = openStore(process.env.DATABASE_URL ?? 'sqlite:./portcullis.db');
 * await store.migrate();
 * const authenticators = [
 *   tokenAuthenticator({ store }),
 *   jwtAuthenticator({ secret: process.env.JWT_SECRET! }),
 * ];
 * const auth = authMiddleware({
 *   authenticators: [ticketAuthenticator({ store }), ...authenticators],
 *   requireAuthentication: true,
 * });
 *
 * const app = Fastify({ logger: restLoggerOptions('info') });
 * installErrorHandlers(app); // the same leak-free error bodies on your own routes
 * await app.register(portcullisRest, { store, authenticators, revoke: auth });
 * app.get('/api/orders', { preHandler: requireUser }, async (request) =>
 *   listOrders(request.user.id),
 * );
 *
 * // The same port serves the sockets, authenticated with the same tokens.
 * attachWebSocket(app.server, auth(urlRouter([route('/ws/chat/', Chat.asApp())])));
 * await app.listen({ port: 8000 });
 * ```
 * @throws {TypeError | RangeError} at registration (from `register` / `ready`) for invalid
 *   options, with a message naming the option.
 * @throws {Error} at registration when `request.user` is already decorated.
 */
export const portcullisRest: FastifyPluginAsync<PortcullisRestOptions> = Object.assign(plugin, {
  // What `fastify-plugin` sets: no encapsulation, so the decorators and the hook reach
  // the scope that registers the plugin.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'portcullis-rest',
  [Symbol.for('plugin-meta')]: { name: 'portcullis-rest', fastify: '5.x' },
});
