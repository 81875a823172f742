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
import { authenticateWithChain, peekChain } from '../auth/chain.js';
import type { ChainResult } from '../auth/chain.js';
import { findCredentials } from '../auth/credentials.js';
import { AddressWindowLimiter } from '../auth/rate-limit.js';
import type { CredentialTransportOptions, FoundCredential } from '../auth/credentials.js';
import {
  REVOCATION_BROADCAST_GROUP,
  broadcastCredentialRevoked,
  broadcastUserRevoked,
} from '../auth/revocation.js';
import type { AuthInfo, CredentialTransport, User } from '../auth/user.js';
import { AuthenticationError, ServiceUnavailableError } from '../errors.js';
import type { ChannelLayer } from '../layers/layer.js';
import { MemoryChannelLayer } from '../layers/memory.js';
import { defaultLogger } from '../logging.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import { isAuthFrame, parseJsonObject } from '../protocol/messages.js';
import { deriveScope } from '../scope.js';
import { SmallMultiMap } from '../small-list.js';
import type { ClientAddress, Scope } from '../scope.js';
import { originMatcher } from './origin.js';
import type { OriginCheckOptions } from './origin.js';

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
   * accepting and closing with a code, for clients that read status codes. Browsers
   * learn nothing from a refused handshake, hence the default.
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
  /** Called once per attempt, for metrics. */
  onResult?: (event: AuthResultEvent) => void;
  /**
   * Tells whether a live session's credential is still valid, for
   * {@link AuthMiddleware.recheckAll}. Without it, `recheckAll` closes nothing.
   */
  recheck?: (session: LiveSession) => Promise<boolean>;
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
  /** Closes every socket of a user on every process (4401 `token revoked`). */
  revokeUser(userId: string): Promise<void>;
  /**
   * Re-checks the credential of every live connection on this process with
   * {@link AuthMiddlewareOptions.recheck} and closes those no longer valid (4401
   * `token revoked`). Run it when the layer comes back from an outage: revocations
   * published while this process was cut off were never heard. Returns how many closed.
   */
  recheckAll(): Promise<number>;
  /** Live authenticated connections on this process. */
  readonly size: number;
  /** Stops listening for revocation broadcasts. */
  close(): Promise<void>;
}

/** A live authenticated connection, as {@link AuthMiddlewareOptions.recheck} sees it. */
export interface LiveSession {
  readonly user: User;
  readonly auth: AuthInfo;
}

interface Verified {
  readonly result: AuthResult;
  readonly authenticator: string;
  readonly transport: CredentialTransport;
}

/** What every session of one middleware shares: one object, not closures per socket. */
interface SessionOwner {
  readonly inBandRefresh: boolean;
  refresh(session: Session, token: string): void;
  unindex(session: Session): void;
}

/**
 * A live authenticated connection and the credential it currently holds. It guards its
 * connection: takes `{"type":"auth"}` frames out for in-band refresh and leaves the
 * indexes when the connection closes.
 */
class Session implements ConnectionGuard, LiveSession {
  readonly connection: Connection;
  // What failures log and count; not the whole scope (~150 bytes a socket).
  readonly path: string;
  readonly client: ClientAddress;
  /** The credential's user and how it was authenticated; `auth` is the scope's object. */
  user: User;
  auth: AuthInfo;
  /** In-band refreshes, verified one after another. */
  refreshing: Promise<void> | undefined = undefined;
  /** The expiry wheel's bucket, while the session is in one. */
  expiryBucket: number | undefined = undefined;
  /** Whether the session is in the revocation indexes. */
  indexed = false;
  readonly #owner: SessionOwner;

  constructor(connection: Connection, scope: Scope, auth: AuthInfo, owner: SessionOwner) {
    this.connection = connection;
    this.path = scope.path;
    this.client = scope.client;
    this.user = scope.user;
    this.auth = auth;
    this.#owner = owner;
  }

  filterMessage(data: IncomingData): boolean {
    if (!this.#owner.inBandRefresh || !looksLikeAuthFrame(data)) return false;
    let frame;
    try {
      frame = parseJsonObject(data);
    } catch {
      return false;
    }
    if (!isAuthFrame(frame)) return false;
    this.#owner.refresh(this, frame.token);
    return true;
  }

  connectionClosed(): void {
    this.#owner.unindex(this);
  }
}

function authInfoOf({ result, authenticator, transport }: Verified): AuthInfo {
  return {
    method: transport,
    authenticator,
    credentialId: result.credentialId,
    expiresAt: result.expiresAt,
  };
}

/** Expiry checks happen on whole-second ticks: a credential closes at most 1 s late. */
const EXPIRY_TICK = 1_000;

/**
 * Closes sessions when their credential expires, with one timer for all of them
 * instead of one per connection: sessions sit in per-second buckets and a single
 * interval, running only while some session can expire, sweeps the due buckets.
 * (One `setTimeout` per socket also overflows past 24.8 days; tokens live 30.)
 */
class ExpiryWheel {
  readonly #now: () => number;
  readonly #expire: (session: Session) => void;
  // Most buckets hold one session: tokens are issued at different times.
  readonly #buckets = new SmallMultiMap<number, Session>();
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(now: () => number, expire: (session: Session) => void) {
    this.#now = now;
    this.#expire = expire;
  }

  add(session: Session, expiresAt: Date | null): void {
    if (expiresAt === null) return;
    const bucket = Math.ceil(expiresAt.getTime() / EXPIRY_TICK);
    this.#buckets.add(bucket, session);
    session.expiryBucket = bucket;
    this.#count += 1;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), EXPIRY_TICK);
      this.#timer.unref();
    }
  }

  remove(session: Session): void {
    const bucket = session.expiryBucket;
    if (bucket === undefined) return;
    session.expiryBucket = undefined;
    this.#count -= 1;
    this.#buckets.delete(bucket, session);
    if (this.#count === 0) this.stop();
  }

  #sweep(): void {
    const now = this.#now();
    const due: Session[] = [];
    for (const [bucket, sessions] of this.#buckets.entries()) {
      if (bucket * EXPIRY_TICK > now) continue;
      for (const session of sessions) {
        const expiresAt = session.auth.expiresAt;
        if (expiresAt !== null && expiresAt.getTime() <= now) due.push(session);
      }
    }
    for (const session of due) {
      this.remove(session);
      this.#expire(session);
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * The connection the inner app sees when the real one cannot be guarded (a connection
 * that is not a {@link BaseConnection}, or already guarded): `{"type":"auth"}` frames
 * are taken out by the session.
 */
class RefreshingConnection implements Connection {
  readonly #real: Connection;
  readonly #session: Session;

  constructor(real: Connection, session: Session) {
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
    onResult,
    recheck,
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
  for (const [name, value] of Object.entries({ firstMessageTimeout, maxFailures, failureWindow })) {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`The "${name}" option must be a non-negative integer`);
    }
  }
  const transports: Required<CredentialTransportOptions> = {
    header: transportOptions.header ?? true,
    cookie: transportOptions.cookie ?? ['key', 'JWT'],
    ticket: transportOptions.ticket ?? true,
    subprotocol: transportOptions.subprotocol ?? true,
    firstMessage: transportOptions.firstMessage ?? true,
    query: transportOptions.query ?? false,
  };
  const originAllowed = originMatcher(allowedOrigins);
  const limiter = new AddressWindowLimiter({ max: maxFailures, windowMs: failureWindow, now });
  /** Live sessions of this process (every session is in `byUser`, which `recheckAll` walks). */
  let sessionCount = 0;
  // Indexes for revocation: one broadcast per revocation reaches every process, which
  // closes its own matching sockets. No per-connection layer group: a handshake costs
  // no layer round trip and no per-connection subscription.
  // Most credentials and users have one socket: no Set each (~250 bytes) until a second.
  const byCredential = new SmallMultiMap<string, Session>();
  const byUser = new SmallMultiMap<string, Session>();
  const expiries = new ExpiryWheel(now, (session) => {
    session.connection.close(CloseCode.Unauthorized, CloseReason.TokenExpired);
  });
  const indexSession = (session: Session): void => {
    if (session.indexed) return;
    session.indexed = true;
    const { user, auth } = session;
    sessionCount += 1;
    byUser.add(user.id, session);
    if (auth.credentialId !== null) byCredential.add(auth.credentialId, session);
    expiries.add(session, auth.expiresAt);
  };
  const unindexSession = (session: Session): void => {
    if (!session.indexed) return;
    session.indexed = false;
    const { user, auth } = session;
    sessionCount -= 1;
    byUser.delete(user.id, session);
    if (auth.credentialId !== null) byCredential.delete(auth.credentialId, session);
    expiries.remove(session);
  };
  const closeSessions = (found: readonly Session[]): void => {
    for (const session of found) {
      session.connection.close(CloseCode.Unauthorized, CloseReason.TokenRevoked);
    }
  };
  const report = (
    transport: AuthResultEvent['transport'],
    authenticator: string | null,
    outcome: AuthOutcome,
  ): void => {
    onResult?.({ transport, authenticator, outcome });
  };

  // One channel per middleware instance hears revocations: it evicts the caches and
  // closes the matching sockets of this process.
  const broadcastChannel = layer.newChannel('revocations');
  layer.attach(broadcastChannel, ({ message }) => {
    if (message.type !== 'auth.revoked') return;
    const { credentialId, userId } = message;
    for (const authenticator of authenticators) {
      if (typeof credentialId === 'string') authenticator.invalidateCredential?.(credentialId);
      if (typeof userId === 'string') authenticator.invalidateUser?.(userId);
    }
    if (typeof credentialId === 'string') closeSessions(byCredential.get(credentialId));
    if (typeof userId === 'string') closeSessions(byUser.get(userId));
  });
  // Handshakes wait for the subscription once; after it settles they need not await.
  let broadcastSettled = false;
  const joinedBroadcast = layer
    .groupAdd(REVOCATION_BROADCAST_GROUP, broadcastChannel)
    .catch((error: unknown) => {
      logger.warn({ err: error }, 'could not subscribe to revocation broadcasts');
    })
    .finally(() => {
      broadcastSettled = true;
    });

  async function verify(credential: string, transport: CredentialTransport): Promise<Verified> {
    const { result, authenticator } = await authenticateWithChain(authenticators, credential, {
      transport,
    });
    return { result, authenticator, transport };
  }

  function verifyAll(credentials: readonly FoundCredential[]): Promise<Verified> {
    // One credential, the usual case: nothing to compare, no extra async step.
    if (credentials.length === 1) return verify(credentials[0]!.value, credentials[0]!.transport);
    return verifyConsistent(credentials);
  }

  async function verifyConsistent(credentials: readonly FoundCredential[]): Promise<Verified> {
    const verified: Verified[] = [];
    for (const { value, transport } of credentials) verified.push(await verify(value, transport));
    const first = verified[0]!;
    if (verified.some((entry) => entry.result.user.id !== first.result.user.id)) {
      throw new AuthenticationError(
        'ERR_CONFLICTING_CREDENTIALS',
        'credentials name different users',
      );
    }
    return first;
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
      if (address !== '') limiter.hit(address);
      report(transport, null, outcomeFor(error));
      logger.info(
        { path: scope.path, transport, code: error.code },
        'websocket authentication failed',
      );
      refuse(connection, CloseCode.Unauthorized, reasonFor(error));
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

  /** Verifies an in-band credential and moves the session onto it (same user only). */
  function refresh(session: Session, token: string): void {
    const { connection } = session;
    session.refreshing = (session.refreshing ?? Promise.resolve()).then(async () => {
      try {
        const next = await verify(token, 'in-band');
        if (next.result.user.id !== session.user.id) {
          throw new AuthenticationError(
            'ERR_CONFLICTING_CREDENTIALS',
            'refresh names another user',
          );
        }
        if (connection.state !== 'open') return;
        unindexSession(session);
        session.user = next.result.user;
        session.auth = authInfoOf(next);
        indexSession(session);
        report('in-band', next.authenticator, 'success');
      } catch (error) {
        fail(connection, session, 'in-band', error);
      }
    });
  }

  const sessionOwner: SessionOwner = { inBandRefresh, refresh, unindex: unindexSession };

  function middleware(inner: Application): Application {
    /** Runs the inner app as the verified user, for the credential's lifetime. */
    function enter(scope: Scope, connection: Connection, verified: Verified): void | Promise<void> {
      if (!broadcastSettled) {
        // Only the first handshakes of a process: revocations must be heard first.
        return joinedBroadcast.then(() => enter(scope, connection, verified));
      }
      if (connection.state === 'closed') return;
      const auth = authInfoOf(verified);
      const userScope = deriveScope(scope, { user: verified.result.user, auth });
      const session = new Session(connection, userScope, auth, sessionOwner);
      indexSession(session);
      let appConnection = connection;
      // A guard costs nothing per socket; other connections get a listener and a wrapper.
      if (!(connection instanceof BaseConnection && connection.guard(session))) {
        connection.onClose(() => unindexSession(session));
        if (inBandRefresh) appConnection = new RefreshingConnection(connection, session);
      }
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
        verify(token, 'first-message')
          .then(
            (verified) => enter(scope, connection, verified),
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

    // Not an async function: a handshake whose credential is cached runs to the inner
    // app without a promise of its own.
    return wrapApplication(inner, (scope, connection) => {
      // Idle limiter (the usual case): no need to ask the kernel for the peer address.
      if (!limiter.idle && limiter.retryAfter(scope.client.address) > 0) {
        report('none', null, 'rate_limited');
        refuse(connection, CloseCode.TooManyRequests, CloseReason.TooManyRequests);
        return;
      }
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
        if (requireAuthentication && transports.firstMessage) {
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
      const { credentials } = found;
      if (credentials.length === 1) {
        const { value, transport } = credentials[0]!;
        let cached: ChainResult | undefined;
        try {
          cached = peekChain(authenticators, value, { transport });
        } catch (error) {
          return fail(connection, scope, transport, error);
        }
        if (cached !== undefined) {
          const { result, authenticator } = cached;
          return enter(baseScope, connection, { result, authenticator, transport });
        }
      }
      return verifyThenEnter(scope, baseScope, connection, credentials);
    });
  }

  // A getter, defined rather than assigned: Object.assign would copy its value once.
  Object.defineProperty(middleware, 'size', { get: () => sessionCount, enumerable: true });
  return Object.assign(middleware as Middleware & { readonly size: number }, {
    layer,
    revokeCredential: (credentialId: string) => broadcastCredentialRevoked(layer, credentialId),
    revokeUser: (userId: string) => broadcastUserRevoked(layer, userId),
    async recheckAll(): Promise<number> {
      if (recheck === undefined) return 0;
      let closed = 0;
      const live = [...byUser.entries()].flatMap(([, found]) => [...found]);
      for (const tracked of live) {
        const { connection } = tracked;
        // A copy: the callback must not reach the connection or the indexes.
        const session: LiveSession = { user: tracked.user, auth: tracked.auth };
        if (session.auth.credentialId !== null) {
          for (const authenticator of authenticators) {
            authenticator.invalidateCredential?.(session.auth.credentialId);
          }
        }
        let valid: boolean;
        try {
          valid = await recheck(session);
        } catch (error) {
          logger.warn({ err: error }, 'could not re-check a session; keeping it for now');
          continue;
        }
        if (!valid) {
          closed += 1;
          connection.close(CloseCode.Unauthorized, CloseReason.TokenRevoked);
        }
      }
      return closed;
    },
    async close(): Promise<void> {
      await joinedBroadcast;
      await layer.detach(broadcastChannel);
      expiries.stop();
    },
  });
}
