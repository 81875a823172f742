/**
 * The Redis connection lifecycle shared by {@link RedisChannelLayer} and
 * {@link RedisPresence}: the lazy `ioredis` import, a command and a subscriber
 * connection (to one server or a cluster) that fail fast instead of queueing, and the
 * `'ready'`/`'down'` status machine with its `onStatus` callback and logging.
 *
 * Fail closed (issue 16): the status turns `'down'` when a connection drops **and** on
 * the first command that fails for want of Redis (a timeout on a stalled link, a
 * cluster node that is gone), not only when the operating system notices. While down
 * every call fails at once. A probe then checks Redis (every master, on a cluster) with
 * capped, jittered backoff; once it answers, the owner's `recover` restores what Redis
 * or the connection may have lost, and the status turns `'ready'`.
 *
 * Both classes hold one {@link RedisLifecycle} (composition rather than a base class,
 * so their public surface stays exactly their own) and keep what differs: the scripts
 * on the command connection, what a recovery must restore, and the not-connected
 * message. Nothing here is public API.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { PortcullisError, ServiceUnavailableError } from '../../errors.js';
import { checkHealth, ClientFactory } from './clients.js';
import type { RedisClient, RedisClientOptions } from './clients.js';

/**
 * Whether a Redis-backed component can reach Redis.
 * @internal
 */
export type RedisStatus = 'ready' | 'down';

type State = 'idle' | 'connecting' | 'ready' | 'down' | 'closed';

/** Reply errors that say Redis (or the slot's node) cannot serve now, rather than "bad command". */
const OUTAGE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|BUSY|NOAUTH|NOPERM|OOM|READONLY)\b/;

/**
 * True when `err` means Redis cannot be used now (no reply, a dropped or refused
 * connection, a cluster that is down), as opposed to a command Redis refused for
 * itself (such as a wrong type under the prefix).
 * @internal
 */
export function isOutage(err: unknown): boolean {
  if (err instanceof PortcullisError) return err instanceof ServiceUnavailableError;
  // ioredis's ReplyError, by name: importing the class would load ioredis eagerly.
  if (err instanceof Error && err.name === 'ReplyError') return OUTAGE_REPLY.test(err.message);
  return true;
}

/**
 * A Redis failure as the error callers see: a {@link PortcullisError} passes through,
 * anything else (a connection or timeout error from ioredis) becomes
 * {@link ServiceUnavailableError} with the original as its cause.
 * @internal
 */
export function unavailable(err: unknown): PortcullisError {
  return err instanceof PortcullisError
    ? err
    : new ServiceUnavailableError('redis', { cause: err });
}

/**
 * Options of {@link RedisLifecycle}, already checked by the owner.
 * @internal
 */
export interface RedisLifecycleOptions<Cmd extends RedisClient> {
  url: string;
  /** `url` names one node of a Redis Cluster. */
  cluster: boolean;
  connectTimeout: number;
  commandTimeout: number;
  maxReconnectDelay: number;
  onStatus: ((status: RedisStatus) => void) | undefined;
  logger: Logger;
  /** Starts every log message, e.g. `'presence'`, so operators know which part spoke. */
  label: string;
  /**
   * Called once Redis answers after a (re)connect or an outage: restores what a new
   * connection (or a Redis that restarted empty) lost. The status becomes `'ready'` when
   * it resolves; when it rejects, it stays `'down'` and the probe tries again.
   */
  recover: (cmd: Cmd, sub: RedisClient) => Promise<unknown>;
}

/**
 * What {@link RedisLifecycle.open} needs from its owner.
 * @internal
 */
export interface RedisOpenSpec {
  /** The command connection's name and scripts. */
  cmd: RedisClientOptions;
  /** The subscriber connection's name (and, on a cluster, whether it may `SSUBSCRIBE`). */
  sub: RedisClientOptions;
  /**
   * Called once both connections exist, before the wait for the first outcome: attach
   * the subscriber's message handler, start timers.
   */
  opened?: (sub: RedisClient) => void;
}

/**
 * One command connection and one subscriber connection to Redis, with the status
 * machine both Redis-backed classes share:
 *
 * - `idle` → `connecting` on {@link open}; then `ready` once Redis answers and the
 *   owner's `recover` succeeded; `down` whenever a connection drops or a command fails
 *   for want of Redis ({@link failure}); `closed` on {@link markClosed}, for good.
 * - A generation counter, bumped on every change for the worse, so a recovery overtaken
 *   by a newer drop or failure does not report a stale `'ready'`.
 * - `onStatus` is called on each change (a throwing callback is logged, never
 *   propagated); an outage is logged once as a warning, each failed probe or reconnect
 *   at debug level only.
 *
 * @internal
 */
export class RedisLifecycle<Cmd extends RedisClient = RedisClient> {
  readonly #options: RedisLifecycleOptions<Cmd>;

  #state: State = 'idle';
  /** Settles the first {@link open} once Redis answered or the first attempt failed. */
  #firstOutcome: (() => void) | undefined;
  /** Bumped on every change for the worse, so a recovery overtaken by one is ignored. */
  #generation = 0;
  #lastError: unknown;
  #factory: ClientFactory | undefined;
  #cmd: Cmd | undefined;
  #sub: RedisClient | undefined;
  #recovering: Promise<void> | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #probeAttempt = 0;

  constructor(options: RedisLifecycleOptions<Cmd>) {
    this.#options = options;
  }

  /** `'ready'` when both connections are up and recovered, `'down'` otherwise. */
  get status(): RedisStatus {
    return this.#state === 'ready' ? 'ready' : 'down';
  }

  /** True once {@link markClosed} ran. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** The command connection; undefined before {@link open} made it. */
  get cmd(): Cmd | undefined {
    return this.#cmd;
  }

  /**
   * The command connection while the status is `'ready'`, else undefined: for work
   * that is skipped rather than failed while Redis is away (a recovery redoes it).
   */
  get usable(): Cmd | undefined {
    return this.#state === 'ready' ? this.#cmd : undefined;
  }

  /** The subscriber connection; undefined before {@link open} made it. */
  get sub(): RedisClient | undefined {
    return this.#sub;
  }

  /** True when `url` names a cluster node. */
  get cluster(): boolean {
    return this.#options.cluster;
  }

  /**
   * The command connection for a call, when Redis is usable.
   * @throws {TypeError} with `notConnected` before {@link open}.
   * @throws {ServiceUnavailableError} while down (at once: nothing waits for Redis), or
   * after close.
   */
  command(notConnected: string): Cmd {
    if (this.#state === 'closed') throw new ServiceUnavailableError('redis');
    if (this.#cmd === undefined) throw new TypeError(notConnected);
    if (this.#state !== 'ready') throw new ServiceUnavailableError('redis');
    return this.#cmd;
  }

  /**
   * Reports a failed command: when it failed for want of Redis ({@link isOutage}) the
   * status turns `'down'` at once and the probe starts. Returns the error callers see.
   */
  failure(err: unknown): PortcullisError {
    if (isOutage(err) && this.#state === 'ready') {
      this.#lastError = err;
      this.#goDown();
    }
    return unavailable(err);
  }

  /**
   * Resolves when both connections are up and Redis answers (every master, on a
   * cluster); for readiness. A failure counts as an outage.
   * @throws {ServiceUnavailableError} otherwise.
   */
  async ping(notConnected: string): Promise<void> {
    const cmd = this.command(notConnected);
    if (this.#sub?.status !== 'ready') throw this.failure(new Error('subscriber not ready'));
    try {
      await checkHealth(cmd);
    } catch (err) {
      throw this.failure(err);
    }
  }

  /**
   * Loads `ioredis`, opens both connections and resolves once Redis answered or the
   * first attempt failed (an unreachable Redis does not make the owner's `connect()`
   * fail: it reports `'down'` and keeps reconnecting). Does nothing once closed.
   */
  async open(spec: RedisOpenSpec): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    const { Redis, Cluster } = await import('ioredis');
    if (this.closed) return; // close ran during the import
    const { url, cluster, connectTimeout, commandTimeout } = this.#options;
    const factory = new ClientFactory(
      { Redis, Cluster },
      {
        url,
        cluster,
        connectTimeout,
        commandTimeout,
        reconnectDelay: (attempt) => this.#reconnectDelay(attempt),
      },
    );
    this.#factory = factory;
    const cmd = factory.connection(spec.cmd) as Cmd;
    // Subscriptions are restored by the owner's recover: ioredis's own resubscription
    // only knows channels confirmed before the outage, not joins and leaves since.
    const sub = factory.connection({ ...spec.sub, autoResubscribe: false });
    this.#cmd = cmd;
    this.#sub = sub;
    for (const client of [cmd, sub]) {
      client.on('error', (err: Error) => {
        this.#lastError = err;
        this.#options.logger.debug({ err }, `${this.#options.label}: redis connection error`);
      });
      client.on('ready', () => this.#recover());
      client.on('close', () => this.#onDropped());
      client.on('end', () => this.#onDropped());
    }
    spec.opened?.(sub);
    await new Promise<void>((resolve) => {
      // ioredis's connectTimeout ends the attempt first; this only guards against a
      // connection that neither succeeds nor fails. Unref'd: a bound on a wait must
      // not itself keep the process alive.
      const guard = setTimeout(resolve, connectTimeout + 1_000);
      guard.unref();
      this.#firstOutcome = () => {
        clearTimeout(guard);
        resolve();
      };
    });
  }

  /**
   * A further, disposable connection with the same URL, credentials and fail-fast
   * settings, never revived once dropped; for blocking reads. Only after {@link open}
   * loaded `ioredis`.
   */
  newClient(connectionName: string): RedisClient {
    return this.#factory!.disposable({ connectionName });
  }

  /**
   * Marks the lifecycle closed for good and settles a pending {@link open}; the owner
   * then does its own cleanup and calls {@link disconnect}.
   * @returns false when it was closed already.
   */
  markClosed(): boolean {
    if (this.#state === 'closed') return false;
    this.#state = 'closed';
    this.#generation += 1;
    clearTimeout(this.#probeTimer);
    this.#settleFirst();
    return true;
  }

  /** Quits both connections politely when they are up, drops them otherwise. */
  async disconnect(): Promise<void> {
    await Promise.all(
      [this.#cmd, this.#sub].map(async (client) => {
        if (client === undefined) return;
        if (client.status === 'ready') {
          try {
            await client.quit();
            return;
          } catch {
            // fall through: close it without a goodbye
          }
        }
        client.disconnect();
      }),
    );
  }

  #reconnectDelay(attempt: number): number {
    const ceiling = Math.min(
      this.#options.maxReconnectDelay,
      50 * 2 ** Math.min(Math.max(attempt, 1) - 1, 16),
    );
    // Half fixed, half random: N processes that lost Redis together do not return in step.
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  #settleFirst(): void {
    const first = this.#firstOutcome;
    this.#firstOutcome = undefined;
    first?.();
  }

  #setState(state: RedisStatus): void {
    this.#settleFirst();
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    const { logger, label, onStatus } = this.#options;
    if (state === 'down') {
      // Once per outage; each reconnect attempt's error goes to debug.
      logger.warn({ err: this.#lastError }, `${label}: redis unavailable`);
    } else logger.info(`${label}: redis ready`);
    try {
      onStatus?.(state);
    } catch (err) {
      logger.error({ err }, `${label}: onStatus threw`);
    }
  }

  #goDown(): void {
    if (this.#state === 'closed') return;
    this.#generation += 1;
    this.#setState('down');
    this.#scheduleProbe();
  }

  #onDropped(): void {
    this.#goDown();
  }

  /** While down: checks Redis again after a backoff delay, until it answers. */
  #scheduleProbe(): void {
    if (this.#probeTimer !== undefined || this.#state === 'closed') return;
    this.#probeAttempt += 1;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#recover();
    }, this.#reconnectDelay(this.#probeAttempt));
    this.#probeTimer.unref();
  }

  /**
   * Once both connections are up: checks that Redis answers, runs the owner's
   * `recover`, and turns `'ready'` unless something failed meanwhile. One at a time;
   * a failure schedules the next probe.
   */
  #recover(): void {
    if (this.#state === 'closed' || this.#state === 'ready' || this.#recovering !== undefined) {
      return;
    }
    const cmd = this.#cmd;
    const sub = this.#sub;
    // Not both up: the reconnect's 'ready' event, or the next probe, comes back here.
    if (cmd?.status !== 'ready' || sub?.status !== 'ready') {
      if (this.#state === 'down') this.#scheduleProbe();
      return;
    }
    const generation = this.#generation;
    this.#recovering = checkHealth(cmd)
      .then(() => this.#options.recover(cmd, sub))
      .then(
        () => {
          if (generation !== this.#generation) return;
          this.#probeAttempt = 0;
          this.#setState('ready');
        },
        (err: unknown) => {
          this.#lastError = err;
          this.#options.logger.debug({ err }, `${this.#options.label}: recovery failed`);
          if (generation === this.#generation) this.#setState('down');
        },
      )
      .finally(() => {
        this.#recovering = undefined;
        if (this.#state === 'down') this.#scheduleProbe();
      });
  }
}
