/**
 * Live sessions: every authenticated connection of a process, indexed by credential and
 * by user identity, closed when its credential expires (4401 `token expired`), is revoked
 * on any process (4401 `token revoked`), or no longer passes a re-check.
 *
 * The re-check hook is the way a credential source that cannot broadcast its own
 * revocations (a database changed by another program: the CLI, a Django admin) reaches
 * live sockets: {@link SessionRegistry.recheck} hands the live sessions, in batches, to
 * a {@link SessionCheck} that answers which no longer hold, and closes those.
 *
 * @module
 */
import type { Logger } from 'pino';
import type { Connection } from '../application.js';
import type { ChannelLayer } from '../layers/layer.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import { SmallMultiMap } from '../small-list.js';
import type { Authenticator } from './authenticator.js';
import { REVOCATION_BROADCAST_GROUP } from './revocation.js';
import type { RevokedMessage } from './revocation.js';
import { identityKey, PORTCULLIS_SOURCE } from './user.js';
import type { AuthInfo, User, UserRef } from './user.js';

/** A live authenticated connection, as a {@link SessionCheck} sees it. */
export interface LiveSession {
  readonly user: User;
  readonly auth: AuthInfo;
}

/**
 * Of a batch of live sessions, the ones whose credential no longer holds (revoked,
 * deleted, user deactivated). Resolve with the very objects it was given. Throw (or
 * reject) when it cannot tell: the sessions are kept and checked again next time.
 *
 * @example
 * ```ts
 * const check: SessionCheck = async (sessions) => {
 *   const ids = sessions.map((s) => s.auth.credentialId).filter((id) => id !== null);
 *   const live = new Set(await db.liveTokenIds(ids)); // one query per batch
 *   return sessions.filter((s) => s.auth.credentialId !== null && !live.has(s.auth.credentialId));
 * };
 * ```
 */
export type SessionCheck = (sessions: readonly LiveSession[]) => Promise<Iterable<LiveSession>>;

/**
 * A live session: its connection, and the user and credential it holds now. The auth
 * middleware subclasses it to guard the connection.
 */
export class Session implements LiveSession {
  readonly connection: Connection;
  user: User;
  auth: AuthInfo;
  /** @internal The expiry wheel's bucket, while the session is in one. */
  expiryBucket: number | undefined = undefined;
  /** @internal Whether the session is in a registry's indexes. */
  indexed = false;

  constructor(connection: Connection, user: User, auth: AuthInfo) {
    this.connection = connection;
    this.user = user;
    this.auth = auth;
  }
}

/** Expiry checks happen on whole-second ticks: a credential closes at most 1 s late. */
const EXPIRY_TICK = 1_000;

/**
 * Closes sessions when their credential expires, with one timer for all of them: sessions
 * sit in per-second buckets and one interval, running only while some session can
 * expire, sweeps the due buckets. (One `setTimeout` per socket would also overflow past
 * 24.8 days; tokens live 30.)
 */
class ExpiryWheel {
  readonly #now: () => number;
  readonly #expire: (session: Session) => void;
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

/** Options of {@link SessionRegistry}. */
export interface SessionRegistryOptions {
  /**
   * The layer whose revocation group carries revocations between processes. Without it,
   * only this process's own {@link SessionRegistry.closeCredential} calls close sockets.
   */
  readonly layer?: ChannelLayer;
  /** Called for every revocation heard on the layer, before sockets close (cache eviction). */
  readonly onRevoked?: (message: RevokedMessage) => void;
  /**
   * Sessions handed to a {@link SessionCheck} at once, so that a check costs a handful
   * of queries per 10,000 sockets.
   * @default 10_000
   */
  readonly recheckBatchSize?: number;
  readonly logger?: Pick<Logger, 'warn'>;
  /** The clock, for expiry. @default Date.now */
  readonly now?: () => number;
}

/**
 * The live sessions of one process: indexed by credential id and by user identity
 * ({@link identityKey}), with expiry, revocation across processes and re-checks.
 *
 * @example
 * ```ts
 * const sessions = new SessionRegistry({ layer });
 * sessions.add(new Session(connection, scope.user, scope.auth));
 * await sessions.recheck(myDjangoCheck); // closes what the check refuses, 4401
 * sessions.startRechecking(myDjangoCheck, 5_000);
 * ```
 * @throws {RangeError} for a `recheckBatchSize` that is not a positive integer.
 */
export class SessionRegistry {
  readonly #byCredential = new SmallMultiMap<string, Session>();
  // Every session is in `byUser` (anonymous ones are never added): it is the list of all.
  readonly #byUser = new SmallMultiMap<string, Session>();
  readonly #expiries: ExpiryWheel;
  readonly #layer: ChannelLayer | undefined;
  readonly #onRevoked: ((message: RevokedMessage) => void) | undefined;
  readonly #batchSize: number;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  #size = 0;
  #channel: string | undefined;
  #joined: Promise<void> | undefined;
  #recheckTimer: NodeJS.Timeout | undefined;
  #rechecking: Promise<number> | undefined;

  constructor(options: SessionRegistryOptions = {}) {
    const { layer, onRevoked, recheckBatchSize = 10_000, logger, now = Date.now } = options;
    if (!Number.isSafeInteger(recheckBatchSize) || recheckBatchSize < 1) {
      throw new RangeError('SessionRegistry: "recheckBatchSize" must be a positive integer');
    }
    this.#layer = layer;
    this.#onRevoked = onRevoked;
    this.#batchSize = recheckBatchSize;
    this.#logger = logger;
    this.#expiries = new ExpiryWheel(now, (session) => {
      session.connection.close(CloseCode.Unauthorized, CloseReason.TokenExpired);
    });
  }

  /** Live sessions in this registry. */
  get size(): number {
    return this.#size;
  }

  /**
   * Starts hearing revocations broadcast on the layer (once). Sessions must not be let in
   * before it settles, or a revocation sent meanwhile would miss them.
   */
  listen(): Promise<void> {
    const layer = this.#layer;
    if (layer === undefined) return Promise.resolve();
    if (this.#joined !== undefined) return this.#joined;
    const channel = layer.newChannel('revocations');
    this.#channel = channel;
    layer.attach(channel, ({ message }) => {
      if (message.type === 'auth.revoked') this.#heard(message as RevokedMessage);
    });
    this.#joined = layer.groupAdd(REVOCATION_BROADCAST_GROUP, channel).catch((error: unknown) => {
      this.#logger?.warn({ err: error }, 'could not subscribe to revocation broadcasts');
    });
    return this.#joined;
  }

  #heard(message: RevokedMessage): void {
    this.#onRevoked?.(message);
    const { credentialId, userId, source } = message;
    if (typeof credentialId === 'string') this.closeCredential(credentialId);
    if (typeof userId === 'string') {
      // Messages without a source came from Portcullis's own token revocations.
      this.closeUser({
        source: typeof source === 'string' ? source : PORTCULLIS_SOURCE,
        id: userId,
      });
    }
  }

  /** Indexes a session until {@link remove}; it expires with its credential. */
  add(session: Session): void {
    if (session.indexed) return;
    session.indexed = true;
    this.#size += 1;
    this.#byUser.add(identityKey(session.user), session);
    if (session.auth.credentialId !== null) {
      this.#byCredential.add(session.auth.credentialId, session);
    }
    this.#expiries.add(session, session.auth.expiresAt);
  }

  /** Forgets a session (its connection closed). */
  remove(session: Session): void {
    if (!session.indexed) return;
    session.indexed = false;
    this.#size -= 1;
    this.#byUser.delete(identityKey(session.user), session);
    if (session.auth.credentialId !== null) {
      this.#byCredential.delete(session.auth.credentialId, session);
    }
    this.#expiries.remove(session);
  }

  /** Moves a session onto a new credential (in-band refresh), re-indexing it. */
  replace(session: Session, user: User, auth: AuthInfo): void {
    const wasIndexed = session.indexed;
    this.remove(session);
    session.user = user;
    session.auth = auth;
    if (wasIndexed) this.add(session);
  }

  /** The live sessions of a credential on this process. */
  sessionsOfCredential(credentialId: string): readonly Session[] {
    return this.#byCredential.get(credentialId);
  }

  /** The live sessions of a user (by identity) on this process. */
  sessionsOfUser(user: UserRef): readonly Session[] {
    return this.#byUser.get(identityKey(user));
  }

  /** Closes this process's sessions of a credential (4401 `token revoked`). @returns how many. */
  closeCredential(credentialId: string): number {
    return closeRevoked(this.#byCredential.get(credentialId));
  }

  /** Closes this process's sessions of a user (4401 `token revoked`). @returns how many. */
  closeUser(user: UserRef): number {
    return closeRevoked(this.#byUser.get(identityKey(user)));
  }

  /**
   * Hands every live session to `check`, in batches, and closes those it refuses
   * (4401 `token revoked`). A batch whose check fails is kept (logged) and checked again
   * next time. Concurrent calls share one run.
   * @returns how many sessions closed.
   */
  recheck(check: SessionCheck): Promise<number> {
    this.#rechecking ??= this.#recheck(check).finally(() => {
      this.#rechecking = undefined;
    });
    return this.#rechecking;
  }

  async #recheck(check: SessionCheck): Promise<number> {
    const live = [...this.#byUser.entries()].flatMap(([, sessions]) => [...sessions]);
    let closed = 0;
    for (let start = 0; start < live.length; start += this.#batchSize) {
      const batch = live.slice(start, start + this.#batchSize);
      // Copies: a check must not reach the connections or the indexes.
      const views: LiveSession[] = batch.map(({ user, auth }) => ({ user, auth }));
      let refused: Iterable<LiveSession>;
      try {
        refused = await check(views);
      } catch (error) {
        this.#logger?.warn({ err: error }, 'could not re-check live sessions; keeping them');
        continue;
      }
      const byView = new Map(views.map((view, index) => [view, batch[index]!]));
      for (const view of refused) {
        const session = byView.get(view);
        // A session that refreshed its credential meanwhile holds another one now.
        if (session === undefined || session.auth !== view.auth) continue;
        byView.delete(view);
        closed += 1;
        session.connection.close(CloseCode.Unauthorized, CloseReason.TokenRevoked);
      }
    }
    return closed;
  }

  /**
   * Runs {@link recheck} every `intervalMs` (never two at once) until {@link close}.
   * @throws {RangeError} for an interval that is not a positive integer.
   */
  startRechecking(check: SessionCheck, intervalMs: number): void {
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
      throw new RangeError('SessionRegistry: the re-check interval must be a positive integer');
    }
    clearInterval(this.#recheckTimer);
    this.#recheckTimer = setInterval(() => {
      if (this.#size > 0 && this.#rechecking === undefined) void this.recheck(check);
    }, intervalMs);
    this.#recheckTimer.unref();
  }

  /** Stops the timers and the revocation subscription. Sessions stay open. */
  async close(): Promise<void> {
    clearInterval(this.#recheckTimer);
    this.#recheckTimer = undefined;
    this.#expiries.stop();
    await this.#rechecking?.catch(() => undefined);
    if (this.#joined !== undefined && this.#layer !== undefined && this.#channel !== undefined) {
      await this.#joined;
      await this.#layer.detach(this.#channel);
    }
  }
}

function closeRevoked(sessions: readonly Session[]): number {
  for (const session of sessions) {
    session.connection.close(CloseCode.Unauthorized, CloseReason.TokenRevoked);
  }
  return sessions.length;
}

/**
 * The default {@link SessionCheck}: each session is asked of the authenticator that
 * accepted it ({@link Authenticator.recheck}); sessions of authenticators without one
 * (a JWT cannot be revoked before its expiry) always hold.
 */
export function recheckWithAuthenticators(authenticators: readonly Authenticator[]): SessionCheck {
  const byName = new Map(
    authenticators.map((authenticator) => [authenticator.name, authenticator]),
  );
  return async (sessions) => {
    const groups = new Map<Authenticator, LiveSession[]>();
    for (const session of sessions) {
      const authenticator = byName.get(session.auth.authenticator);
      if (authenticator?.recheck === undefined) continue;
      let group = groups.get(authenticator);
      if (group === undefined) groups.set(authenticator, (group = []));
      group.push(session);
    }
    const refused: LiveSession[] = [];
    for (const [authenticator, group] of groups) {
      for (const session of await authenticator.recheck!(group)) refused.push(session);
    }
    return refused;
  };
}
