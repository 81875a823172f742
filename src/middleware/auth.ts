/**
 * The WebSocket authentication middleware (SPEC §3): credentials from any of six
 * transports, an authenticator chain, the Origin rule for cookies, first-message auth,
 * expiry, in-band refresh and revocation on every process.
 *
 * @module
 */
import type { Logger } from 'pino';
import type {
  Application,
  Connection,
  CloseEvent,
  ConnectionGuard,
  IncomingData,
  Middleware,
  AcceptOptions,
  OutgoingData,
} from '../application.js';
import { BaseConnection, wrapApplication } from '../application.js';
import type { Authenticator, AuthResult } from '../auth/authenticator.js';
import { authenticateWithChain } from '../auth/chain.js';
import { findCredentials } from '../auth/credentials.js';
import { AddressWindowLimiter } from '../auth/rate-limit.js';
import type { AttemptLimiter } from '../auth/rate-limit.js';
import type { CredentialTransportOptions, FoundCredential } from '../auth/credentials.js';
import { broadcastCredentialRevoked, broadcastUserRevoked } from '../auth/revocation.js';
import { recheckWithAuthenticators, Session, SessionRegistry } from '../auth/sessions.js';
import type { SessionCheck } from '../auth/sessions.js';
import { identityKey } from '../auth/user.js';
import type { AuthInfo, CredentialTransport, UserRef } from '../auth/user.js';
import { AuthenticationError, ServiceUnavailableError } from '../errors.js';
import type { ChannelLayer } from '../layers/layer.js';
import { MemoryChannelLayer } from '../layers/memory.js';
import { defaultLogger } from '../logging.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import { isAuthFrame, parseJsonObject } from '../protocol/messages.js';
import { deriveScope } from '../scope.js';
import type { ClientAddress, Scope } from '../scope.js';
import { originMatcher } from './origin.js';
import type { OriginCheckOptions } from './origin.js';

export type { LiveSession } from '../auth/sessions.js';

/** Outcome labels reported to {@link AuthMiddlewareOptions.onResult} (and metrics). */
export type AuthOutcome =
  | 'success'
  | 'anonymous'
  | 'invalid'
  | 'expired'
  | 'revoked'
  | 'conflict'
  | 'origin'
  | 'timeout'
  | 'rate_limited'
  | 'unavailable'
  | 'error';

/** One authentication attempt, for metrics. Never carries the credential. */
export interface AuthResultEvent {
  readonly transport: CredentialTransport | 'none';
  readonly authenticator: string | null;
  readonly outcome: AuthOutcome;
}

/** Options of {@link authMiddleware}. */
export interface AuthMiddlewareOptions {
  /** Tried in order; the first that recognises a credential decides. */
  authenticators: readonly Authenticator[];
  /** Which transports are read. Defaults follow SPEC §3 (query tokens off). */
  transports?: CredentialTransportOptions;
  /**
   * Origins allowed to use cookie credentials (exact scheme, host and port). A cookie
   * connection with another `Origin` closes 4403 `origin not allowed`; one without any
   * `Origin` (a non-browser client) passes.
   * @default [] (browsers may not use cookies until origins are listed)
   */
  allowedOrigins?: OriginCheckOptions['allowedOrigins'];
  /**
   * Close anonymous connections with 4401 `authentication required` (after the
   * first-message window, when that transport is on).
   * @default false
   */
  requireAuthentication?: boolean;
  /** How long a client has to send `{"type":"auth"}` first, in ms (4408 after). @default 5000 */
  firstMessageTimeout?: number;
  /**
   * Accept `{"type":"auth","token":…}` frames on an open connection to replace an
   * expiring credential. Such frames never reach the app.
   * @default true
   */
  inBandRefresh?: boolean;
  /**
   * Refuse at the HTTP handshake (401 with `WWW-Authenticate`, 403, 429, 503) instead of
   * accepting and closing with a code, for clients that read status codes (SPEC §5).
   * A handshake without a credential is then refused 401 at once: there is no socket
   * for a first-message credential. Browsers learn nothing from a refused handshake,
   * hence the default.
   * @default false
   */
  refuseAtHandshake?: boolean;
  /**
   * The layer whose groups carry revocations between processes. Use the app's layer
   * (Redis when scaled out).
   * @default a private in-process layer
   */
  layer?: ChannelLayer;
  /**
   * Failed authentications allowed per client address per `failureWindow`; past it,
   * connections from that address close 4429 until the window ends. `0`: no limit.
   * @default 20
   */
  maxFailures?: number;
  /** @default 60000 (1 minute) */
  failureWindow?: number;
  /**
   * Where failed authentications are counted, instead of this process
   * (`maxFailures` / `failureWindow`): a `RedisAttemptLimiter` shares one budget per
   * address among every process of a deployment.
   * @default an in-process limiter of `maxFailures` per `failureWindow`
   */
  failureLimiter?: AttemptLimiter;
  /**
   * Frames an authenticated connection may send: `perSecond` on average with bursts of
   * up to `burst`. Past it the connection closes 4429 `too many requests`; other
   * connections are not affected. Auth frames count too.
   * @default undefined (no limit)
   */
  messageRate?: { readonly perSecond: number; readonly burst: number };
  /** Called once per attempt, for metrics. */
  onResult?: (event: AuthResultEvent) => void;
  /**
   * Of a batch of live sessions, the ones whose credential no longer holds, for
   * {@link AuthMiddleware.recheckAll} and the periodic re-check.
   * @default each session asked of the authenticator that accepted it
   *   (`Authenticator.recheck`; the token and ticket authenticators read the token rows)
   */
  recheck?: SessionCheck;
  /**
   * Re-checks every live session this often (ms), closing those whose credential was
   * revoked where no broadcast could tell (the CLI on the same database without Redis,
   * a user deactivated): 4401 `token revoked`. `0`: only on {@link AuthMiddleware.recheckAll}.
   * @default 0
   */
  recheckInterval?: number;
  logger?: Logger;
  /** The clock, for expiry timers. @default Date.now */
  now?: () => number;
}

/** The middleware, with revocation entry points bound to its layer. */
export interface AuthMiddleware extends Middleware {
  /** The layer revocations travel on. */
  readonly layer: ChannelLayer;
  /** Closes every socket of a credential on every process (4401 `token revoked`). */
  revokeCredential(credentialId: string): Promise<void>;
  /**
   * Closes every socket of a user on every process (4401 `token revoked`). A user is
   * (source, id) (SPEC §3); a bare id names a user of the Portcullis store.
   */
  revokeUser(user: string | UserRef): Promise<void>;
  /**
   * Re-checks the credential of every live connection on this process with
   * {@link AuthMiddlewareOptions.recheck} and closes those no longer valid (4401
   * `token revoked`). Run it when the layer comes back from an outage: revocations
   * published while this process was cut off were never heard. Returns how many closed.
   */
  recheckAll(): Promise<number>;
  /** This process's live sessions: by credential and user, with re-checks. */
  readonly sessions: SessionRegistry;
  /** Live authenticated connections on this process. */
  readonly size: number;
  /** Stops listening for revocation broadcasts. */
  close(): Promise<void>;
}

interface Verified {
  readonly result: AuthResult;
  readonly authenticator: string;
  readonly transport: CredentialTransport;
}

/** What every session of one middleware shares: one object, not closures per socket. */
interface SessionOwner {
  /** Whether `{"type":"auth"}` frames are taken out of the stream (SPEC §3). */
  readonly claimsAuthFrames: boolean;
  /** Whether one more frame fits the message rate; `undefined` when there is none. */
  readonly admit: ((session: GuardedSession) => boolean) | undefined;
  /** Verifies an in-band credential: the same user, or the connection closes. */
  authFrame(session: GuardedSession, token: string): void;
  closed(session: GuardedSession): void;
}

/**
 * A live session that guards its connection: takes `{"type":"auth"}` frames out for
 * in-band refresh and leaves the registry when the connection closes. It guards from the
 * first frame on, before its credential is verified, so an auth frame pipelined behind the
 * first one is checked too (issue 16).
 */
class GuardedSession extends Session implements ConnectionGuard {
  // What failures log and count; not the whole scope.
  readonly path: string;
  readonly client: ClientAddress;
  /** In-band credentials, verified one after another. */
  refreshing: Promise<void> | undefined = undefined;
  /** Auth frames that arrived before the session's own credential was verified. */
  early: string[] | undefined = undefined;
  /** False until the session's credential is verified. */
  entered = false;
  /** The message-rate bucket: frames allowed now, and when it was last filled. */
  allowance = Infinity;
  checkedAt = 0;
  readonly #owner: SessionOwner;

  constructor(connection: Connection, scope: Scope, auth: AuthInfo, owner: SessionOwner) {
    super(connection, scope.user, auth);
    this.path = scope.path;
    this.client = scope.client;
    this.#owner = owner;
  }

  filterMessage(data: IncomingData): boolean {
    const { admit } = this.#owner;
    if (admit !== undefined && !admit(this)) {
      if (this.connection.state === 'open') {
        this.connection.close(CloseCode.TooManyRequests, CloseReason.TooManyRequests);
      }
      return true;
    }
    if (!this.#owner.claimsAuthFrames || !looksLikeAuthFrame(data)) return false;
    let frame;
    try {
      frame = parseJsonObject(data);
    } catch {
      return false;
    }
    if (!isAuthFrame(frame)) return false;
    if (this.entered) this.#owner.authFrame(this, frame.token);
    else (this.early ??= []).push(frame.token);
    return true;
  }

  connectionClosed(): void {
    this.#owner.closed(this);
  }
}

/** Placeholder credential of a session whose first message is still being verified. */
const PENDING_AUTH: AuthInfo = Object.freeze({
  method: 'first-message',
  authenticator: '',
  credentialId: null,
  expiresAt: null,
});

function authInfoOf({ result, authenticator, transport }: Verified): AuthInfo {
  return {
    method: transport,
    authenticator,
    credentialId: result.credentialId,
    expiresAt: result.expiresAt,
  };
}

/**
 * The connection the inner app sees when the real one cannot be guarded (a connection
 * that is not a {@link BaseConnection}, or already guarded): `{"type":"auth"}` frames
 * are taken out by the session.
 */
class RefreshingConnection implements Connection {
  readonly #real: Connection;
  readonly #session: GuardedSession;

  constructor(real: Connection, session: GuardedSession) {
    this.#real = real;
    this.#session = session;
  }

  get id(): string {
    return this.#real.id;
  }
  get state(): Connection['state'] {
    return this.#real.state;
  }
  get subprotocol(): string | null {
    return this.#real.subprotocol;
  }
  accept(options?: AcceptOptions): void {
    this.#real.accept(options);
  }
  reject(status: number, headers?: Readonly<Record<string, string>>): void {
    this.#real.reject(status, headers);
  }
  send(data: OutgoingData): void {
    this.#real.send(data);
  }
  close(code?: number, reason?: string): void {
    this.#real.close(code, reason);
  }
  onMessage(listener: (data: IncomingData) => void): () => void {
    return this.#real.onMessage((data) => {
      if (!this.#session.filterMessage(data)) listener(data);
    });
  }
  onClose(listener: (event: CloseEvent) => void | Promise<void>): () => void {
    return this.#real.onClose(listener);
  }
}

function looksLikeAuthFrame(data: IncomingData): data is string {
  return typeof data === 'string' && data.length < 20_000 && data.includes('"auth"');
}

function reasonFor(error: AuthenticationError): string {
  switch (error.code) {
    case 'ERR_TOKEN_EXPIRED':
      return CloseReason.TokenExpired;
    case 'ERR_TOKEN_REVOKED':
      return CloseReason.TokenRevoked;
    case 'ERR_INVALID_CREDENTIALS':
    case 'ERR_CONFLICTING_CREDENTIALS':
      return CloseReason.InvalidCredentials;
  }
}

function outcomeFor(error: AuthenticationError): AuthOutcome {
  switch (error.code) {
    case 'ERR_TOKEN_EXPIRED':
      return 'expired';
    case 'ERR_TOKEN_REVOKED':
      return 'revoked';
    case 'ERR_CONFLICTING_CREDENTIALS':
      return 'conflict';
    case 'ERR_INVALID_CREDENTIALS':
      return 'invalid';
  }
}

/**
 * Authenticates WebSocket connections with the same credentials as the REST API and
 * puts the user in `scope.user` and how in `scope.auth`.
 *
 * A recognised but invalid credential closes 4401 (never falls through to anonymous);
 * credentials on several transports must name the same user; cookie credentials obey
 * the Origin allow-list; expired credentials close 4401 `token expired` unless refreshed
 * in-band; revoked ones close 4401 `token revoked` on every process sharing the layer.
 *
 * @example
 * ```ts
 * const auth = authMiddleware({
 *   authenticators: [tokenAuthenticator({ store }), jwtAuthenticator({ secret })],
 *   allowedOrigins: ['https://app.example.com'],
 *   requireAuthentication: true,
 *   layer,
 * });
 * const app = auth(urlRouter([route('/ws/chat/', Chat.asApp({ layer }))]));
 * // on logout: await store.revokeToken(id); await auth.revokeCredential(id);
 * ```
 * @throws {TypeError | RangeError} for invalid options.
 */
export function authMiddleware(options: AuthMiddlewareOptions): AuthMiddleware {
  const {
    authenticators,
    transports: transportOptions = {},
    allowedOrigins = [],
    requireAuthentication = false,
    firstMessageTimeout = 5_000, // 5 s
    inBandRefresh = true,
    refuseAtHandshake = false,
    layer = new MemoryChannelLayer(),
    maxFailures = 20,
    failureWindow = 60_000, // 1 minute
    failureLimiter,
    messageRate,
    onResult,
    recheck = recheckWithAuthenticators(authenticators),
    recheckInterval = 0, // off
    logger = defaultLogger(),
    now = Date.now,
  } = options;
  if (!Array.isArray(authenticators) || authenticators.length === 0) {
    throw new TypeError('"authenticators" must be a non-empty array of authenticators');
  }
  for (const authenticator of authenticators) {
    if (typeof authenticator?.authenticate !== 'function') {
      throw new TypeError('Every authenticator must have an authenticate() method');
    }
  }
  for (const [name, value] of Object.entries({
    firstMessageTimeout,
    maxFailures,
    failureWindow,
    recheckInterval,
  })) {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`The "${name}" option must be a non-negative integer`);
    }
  }
  if (typeof recheck !== 'function') throw new TypeError('"recheck" must be a function');
  const transports: Required<CredentialTransportOptions> = {
    header: transportOptions.header ?? true,
    cookie: transportOptions.cookie ?? ['key', 'JWT'],
    ticket: transportOptions.ticket ?? true,
    subprotocol: transportOptions.subprotocol ?? true,
    firstMessage: transportOptions.firstMessage ?? true,
    query: transportOptions.query ?? false,
  };
  const originAllowed = originMatcher(allowedOrigins);
  if (
    messageRate !== undefined &&
    !(messageRate.perSecond > 0 && Number.isFinite(messageRate.perSecond) && messageRate.burst >= 1)
  ) {
    throw new RangeError('"messageRate" needs a positive perSecond and a burst of at least 1');
  }
  const limiter: AttemptLimiter =
    failureLimiter ?? new AddressWindowLimiter({ max: maxFailures, windowMs: failureWindow, now });
  // One broadcast per revocation reaches every process, which evicts its caches and
  // closes its own matching sockets: no per-connection layer group.
  const sessions = new SessionRegistry({
    layer,
    logger,
    now,
    onRevoked: ({ credentialId, userId }) => {
      for (const authenticator of authenticators) {
        if (typeof credentialId === 'string') authenticator.invalidateCredential?.(credentialId);
        if (typeof userId === 'string') authenticator.invalidateUser?.(userId);
      }
    },
  });
  // Handshakes wait for the subscription once; after it settles they need not await.
  let listening = false;
  const heard = sessions.listen().finally(() => {
    listening = true;
  });
  if (recheckInterval > 0) sessions.startRechecking(recheck, recheckInterval);

  const report = (
    transport: AuthResultEvent['transport'],
    authenticator: string | null,
    outcome: AuthOutcome,
  ): void => {
    onResult?.({ transport, authenticator, outcome });
  };

  async function verify(
    credential: string,
    transport: CredentialTransport,
    cookie?: string,
  ): Promise<Verified> {
    const context = cookie === undefined ? { transport } : { transport, cookie };
    const { result, authenticator } = await authenticateWithChain(
      authenticators,
      credential,
      context,
    );

    return { result, authenticator, transport };
  }

  function verifyAll(credentials: readonly FoundCredential[]): Promise<Verified> {
    // One credential, the usual case: nothing to compare, no extra async step.
    if (credentials.length === 1) {
      const { value, transport, cookie } = credentials[0]!;
      return verify(value, transport, cookie);
    }
    return verifyConsistent(credentials);
  }

  async function verifyConsistent(credentials: readonly FoundCredential[]): Promise<Verified> {
    const verified: Verified[] = [];
    for (const { value, transport, cookie } of credentials) {
      verified.push(await verify(value, transport, cookie));
    }
    const first = identityKey(verified[0]!.result.user);
    if (verified.some((entry) => identityKey(entry.result.user) !== first)) {
      throw new AuthenticationError(
        'ERR_CONFLICTING_CREDENTIALS',
        'credentials name different users',
      );
    }
    return verified[0]!;
  }

  function refuse(connection: Connection, code: CloseCode, reason: string): void {
    if (refuseAtHandshake && connection.state === 'pending') {
      const status =
        code === CloseCode.Unauthorized
          ? 401
          : code === CloseCode.Forbidden
            ? 403
            : code === CloseCode.TooManyRequests
              ? 429
              : 503;
      connection.reject(
        status,
        status === 401 ? { 'WWW-Authenticate': 'Bearer realm="portcullis"' } : {},
      );
      return;
    }
    connection.close(code, reason);
  }

  /** Maps a failure to its close code; returns nothing so callers can `return fail(...)`. */
  function fail(
    connection: Connection,
    scope: Pick<Scope, 'path' | 'client'>,
    transport: AuthResultEvent['transport'],
    error: unknown,
  ): void {
    if (error instanceof AuthenticationError) {
      // The peer address is read lazily; once the socket is gone it is unknown (''). A
      // client that left before its answer learnt nothing from the guess: not counted.
      const address = scope.client.address;
      report(transport, null, outcomeFor(error));
      logger.info(
        { path: scope.path, transport, code: error.code },
        'websocket authentication failed',
      );
      const counted = address === '' ? 0 : limiter.hit(address);
      if (typeof counted === 'number') {
        refuse(connection, CloseCode.Unauthorized, reasonFor(error));
        return;
      }
      // A shared count lands before the answer, so the client's next attempt, on any
      // process, sees it: the budget is exact however fast it retries.
      void counted
        .catch((countError: unknown) => {
          logger.warn({ err: countError }, 'could not count a failed authentication');
        })
        .finally(() => refuse(connection, CloseCode.Unauthorized, reasonFor(error)));
      return;
    }
    if (error instanceof ServiceUnavailableError) {
      report(transport, null, 'unavailable');
      logger.warn({ err: error, path: scope.path }, 'cannot authenticate: backing service down');
      refuse(connection, CloseCode.TryAgainLater, CloseReason.TryAgainLater);
      return;
    }
    report(transport, null, 'error');
    logger.error({ err: error, path: scope.path }, 'authentication error');
    refuse(connection, CloseCode.InternalError, '');
  }

  /**
   * An auth frame on an authenticated connection: it must name the same user (SPEC §3),
   * or the connection closes. With in-band refresh on, the session moves onto it.
   */
  function authFrame(session: GuardedSession, token: string): void {
    const { connection } = session;
    session.refreshing = (session.refreshing ?? Promise.resolve()).then(async () => {
      try {
        const next = await verify(token, 'in-band');
        if (identityKey(next.result.user) !== identityKey(session.user)) {
          throw new AuthenticationError(
            'ERR_CONFLICTING_CREDENTIALS',
            'an auth frame names another user',
          );
        }
        if (connection.state !== 'open' || !inBandRefresh) return;
        sessions.replace(session, next.result.user, authInfoOf(next));
        report('in-band', next.authenticator, 'success');
      } catch (error) {
        fail(connection, session, 'in-band', error);
      }
    });
  }

  const sessionOwner: SessionOwner = {
    claimsAuthFrames: inBandRefresh || transports.firstMessage,
    admit:
      messageRate === undefined
        ? undefined
        : (session) => {
            const at = now();
            const { perSecond, burst } = messageRate;
            session.allowance = Math.min(
              burst,
              session.allowance + ((at - session.checkedAt) * perSecond) / 1000,
            );
            session.checkedAt = at;
            if (session.allowance < 1) return false;
            session.allowance -= 1;
            return true;
          },
    authFrame,
    closed: (session) => sessions.remove(session),
  };

  /** A session guarding `connection` from now on; the caller enters it once verified. */
  function guard(
    scope: Scope,
    connection: Connection,
  ): { session: GuardedSession; appConnection: Connection } {
    const session = new GuardedSession(connection, scope, PENDING_AUTH, sessionOwner);
    // A guard costs nothing per socket; other connections get a listener and a wrapper.
    if (connection instanceof BaseConnection && connection.guard(session)) {
      return { session, appConnection: connection };
    }
    connection.onClose(() => sessions.remove(session));
    return { session, appConnection: new RefreshingConnection(connection, session) };
  }

  function middleware(inner: Application): Application {
    /** Runs the inner app as the verified user, for the credential's lifetime. */
    function enter(
      scope: Scope,
      connection: Connection,
      verified: Verified,
      guarded = guard(scope, connection),
    ): void | Promise<void> {
      if (!listening) {
        // Only the first handshakes of a process: revocations must be heard first.
        return heard.then(() => enter(scope, connection, verified, guarded));
      }
      if (connection.state === 'closed') return;
      const auth = authInfoOf(verified);
      const userScope = deriveScope(scope, { user: verified.result.user, auth });
      const { session, appConnection } = guarded;
      session.user = userScope.user;
      session.auth = auth;
      session.entered = true;
      sessions.add(session);
      // Auth frames pipelined behind the credential are checked now, in order.
      for (const token of session.early ?? []) authFrame(session, token);
      session.early = undefined;
      report(verified.transport, verified.authenticator, 'success');
      return inner(userScope, appConnection);
    }

    function awaitFirstMessage(scope: Scope, connection: Connection): void {
      connection.accept({ subprotocol: scope.protocol ?? scope.subprotocols[0] });
      let timer: NodeJS.Timeout | undefined;
      const stopListening = connection.onMessage((data) => {
        stopListening();
        clearTimeout(timer);
        let token: string | undefined;
        try {
          const frame = parseJsonObject(data);
          if (isAuthFrame(frame)) token = frame.token;
        } catch {
          token = undefined;
        }
        if (token === undefined) {
          report('first-message', null, 'invalid');
          connection.close(CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
          return;
        }
        // Guard before verifying: frames that follow in the same read are checked too.
        const guarded = guard(scope, connection);
        verify(token, 'first-message')
          .then(
            (verified) => enter(scope, connection, verified, guarded),
            (error: unknown) => fail(connection, scope, 'first-message', error),
          )
          .catch((error: unknown) => fail(connection, scope, 'first-message', error));
      });
      if (firstMessageTimeout > 0) {
        timer = setTimeout(() => {
          stopListening();
          report('first-message', null, 'timeout');
          connection.close(CloseCode.AuthenticationTimeout, CloseReason.AuthenticationTimeout);
        }, firstMessageTimeout);
        connection.onClose(() => clearTimeout(timer));
      }
    }

    /** The credentials need an authenticator's I/O: verify them, then enter. */
    async function verifyThenEnter(
      scope: Scope,
      baseScope: Scope,
      connection: Connection,
      credentials: readonly FoundCredential[],
    ): Promise<void> {
      let verified: Verified;
      try {
        verified = await verifyAll(credentials);
      } catch (error) {
        return fail(connection, scope, credentials[0]!.transport, error);
      }
      if (connection.state === 'closed') return;
      await enter(baseScope, connection, verified);
    }

    /** Refuses an address over its failure budget; true when it did. */
    function overBudget(connection: Connection, wait: number): boolean {
      if (wait === 0) return false;
      report('none', null, 'rate_limited');
      refuse(connection, CloseCode.TooManyRequests, CloseReason.TooManyRequests);
      return true;
    }

    return wrapApplication(inner, (scope, connection) => {
      // Idle limiter (the usual case): no need to ask the kernel for the peer address.
      if (limiter.idle) return handshake(scope, connection);
      let wait;
      try {
        wait = limiter.retryAfter(scope.client.address);
      } catch (error) {
        return fail(connection, scope, 'none', error);
      }
      if (typeof wait === 'number') {
        return overBudget(connection, wait) ? undefined : handshake(scope, connection);
      }
      // A shared limiter answers asynchronously: a budget spent on another process counts.
      return wait.then(
        (seconds) => (overBudget(connection, seconds) ? undefined : handshake(scope, connection)),
        (error: unknown) => fail(connection, scope, 'none', error),
      );
    });

    function handshake(scope: Scope, connection: Connection): void | Promise<void> {
      let found;
      try {
        found = findCredentials(scope, transports);
      } catch (error) {
        return fail(connection, scope, 'none', error);
      }
      const usesCookie = found.credentials.some((credential) => credential.transport === 'cookie');
      if (usesCookie && scope.origin !== null && !originAllowed(scope.origin)) {
        report('cookie', null, 'origin');
        refuse(connection, CloseCode.Forbidden, CloseReason.OriginNotAllowed);
        return;
      }
      const baseScope = deriveScope(scope, { subprotocols: found.subprotocols });
      if (found.credentials.length === 0) {
        // Refusing at the handshake leaves no socket for a first message to arrive on.
        if (requireAuthentication && transports.firstMessage && !refuseAtHandshake) {
          awaitFirstMessage(baseScope, connection);
          return;
        }
        if (requireAuthentication) {
          report('none', null, 'anonymous');
          refuse(connection, CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
          return;
        }
        report('none', null, 'anonymous');
        return inner(baseScope, connection);
      }
      return verifyThenEnter(scope, baseScope, connection, found.credentials);
    }
  }

  // A getter, defined rather than assigned: Object.assign would copy its value once.
  Object.defineProperty(middleware, 'size', { get: () => sessions.size, enumerable: true });
  return Object.assign(middleware as Middleware & { readonly size: number }, {
    layer,
    sessions,
    revokeCredential: (credentialId: string) => broadcastCredentialRevoked(layer, credentialId),
    revokeUser: (user: string | UserRef) => broadcastUserRevoked(layer, user),
    recheckAll: () => sessions.recheck(recheck),
    async close(): Promise<void> {
      await heard;
      await sessions.close();
    },
  });
}
