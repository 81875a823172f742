/**
 * The Redis connection lifecycle shared by {@link RedisChannelLayer} and
 * {@link RedisPresence}: the lazy `ioredis` import, a command and a
 * subscriber connection that fail fast instead of queueing, capped jittered reconnects,
 * and the `'ready'`/`'down'` status machine with its `onStatus` callback and logging.
 *
 * Both classes hold one {@link RedisLifecycle} (composition rather than a base class,
 * so their public surface stays exactly their own) and keep what differs: the scripts
 * on the command connection, what a reconnect must restore, and the not-connected
 * message. Nothing here is public API.
 *
 * Only types are imported from `ioredis` here, so loading this module does not load
 * `ioredis`: apps that never use Redis never pay for it.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import type { Redis, RedisOptions } from 'ioredis';
import { PortcullisError, ServiceUnavailableError } from '../../errors.js';

/**
 * Whether a Redis-backed component can reach Redis.
 * @internal
 */
export type RedisStatus = 'ready' | 'down';

type State = 'idle' | 'connecting' | 'ready' | 'down' | 'closed';

type RedisModule = typeof import('ioredis');

/**
 * Fail fast instead of queueing while Redis is away: no unbounded memory, no hung call;
 * a command in flight when the connection drops is rejected, never resent, so nothing
 * is reported done that Redis did not confirm.
 */
const FAIL_FAST = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
} satisfies RedisOptions;

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
 * Options for one ioredis connection. Without `replyMapping`, which ioredis's
 * constructor types without `| undefined`: spreading `RedisOptions` into it would not
 * type-check under `exactOptionalPropertyTypes`, and neither owner uses it.
 * @internal
 */
export type RedisClientOptions = Omit<RedisOptions, 'replyMapping'>;

/**
 * Options of {@link RedisLifecycle}, already checked by the owner.
 * @internal
 */
export interface RedisLifecycleOptions<Cmd extends Redis> {
  url: string;
  connectTimeout: number;
  commandTimeout: number;
  maxReconnectDelay: number;
  onStatus: ((status: RedisStatus) => void) | undefined;
  logger: Logger;
  /** Starts every log message, e.g. `'presence'`, so operators know which part spoke. */
  label: string;
  /**
   * Called after every (re)connect, once both connections are up: restores what a new
   * connection (or a Redis that restarted empty) lost. The status becomes `'ready'` when
   * it resolves; when it rejects, it stays `'down'` until the next reconnect retries.
   */
  recover: (cmd: Cmd, sub: Redis) => Promise<unknown>;
}

/**
 * What {@link RedisLifecycle.open} needs from its owner.
 * @internal
 */
export interface RedisOpenSpec {
  /** Added to the shared options of the command connection (its name, its scripts). */
  cmd: RedisClientOptions;
  /** Added to the shared options of the subscriber connection (its name). */
  sub: RedisClientOptions;
  /**
   * Called once both connections exist, before the wait for the first outcome: attach
   * the subscriber's message handler, start timers.
   */
  opened?: (sub: Redis) => void;
}

/**
 * One command connection and one subscriber connection to Redis, with the status
 * machine both Redis-backed classes share:
 *
 * - `idle` → `connecting` on {@link open}; then `ready` once both connections are up
 *   and the owner's `recover` succeeded, `down` whenever either connection drops;
 *   `closed` on {@link markClosed}, for good.
 * - A generation counter, bumped on every connection change, so a recovery overtaken
 *   by a newer drop or reconnect does not report a stale `'ready'`.
 * - `onStatus` is called on each change (a throwing callback is logged, never
 *   propagated); an outage is logged once as a warning, each reconnect attempt's error
 *   at debug level only.
 *
 * @internal
 */
export class RedisLifecycle<Cmd extends Redis = Redis> {
  readonly #url: string;
  readonly #connectTimeout: number;
  readonly #commandTimeout: number;
  readonly #maxReconnectDelay: number;
  readonly #onStatus: ((status: RedisStatus) => void) | undefined;
  readonly #logger: Logger;
  readonly #label: string;
  readonly #recover: (cmd: Cmd, sub: Redis) => Promise<unknown>;

  #state: State = 'idle';
  /** Settles the first {@link open} once Redis answered or the first attempt failed. */
  #firstOutcome: (() => void) | undefined;
  /** Bumped on every connection change, so a recovery overtaken by one is ignored. */
  #generation = 0;
  #lastError: Error | undefined;
  #client: RedisModule['Redis'] | undefined;
  #cmd: Cmd | undefined;
  #sub: Redis | undefined;

  constructor(options: RedisLifecycleOptions<Cmd>) {
    this.#url = options.url;
    this.#connectTimeout = options.connectTimeout;
    this.#commandTimeout = options.commandTimeout;
    this.#maxReconnectDelay = options.maxReconnectDelay;
    this.#onStatus = options.onStatus;
    this.#logger = options.logger;
    this.#label = options.label;
    this.#recover = options.recover;
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

  /** The subscriber connection; undefined before {@link open} made it. */
  get sub(): Redis | undefined {
    return this.#sub;
  }

  /**
   * The command connection for a call. @throws {ServiceUnavailableError} after close.
   * @throws {TypeError} with `notConnected` before {@link open}.
   */
  command(notConnected: string): Cmd {
    if (this.#state === 'closed') throw new ServiceUnavailableError('redis');
    if (this.#cmd === undefined) throw new TypeError(notConnected);
    return this.#cmd;
  }

  /**
   * Loads `ioredis`, opens both connections and resolves once Redis answered or the
   * first attempt failed (an unreachable Redis does not make the owner's `connect()`
   * fail: it reports `'down'` and keeps reconnecting). Does nothing once closed.
   */
  async open(spec: RedisOpenSpec): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    const { Redis: RedisClient } = await import('ioredis');
    if (this.closed) return; // close ran during the import
    this.#client = RedisClient;
    const common = {
      connectTimeout: this.#connectTimeout,
      commandTimeout: this.#commandTimeout,
      ...FAIL_FAST,
      retryStrategy: (attempt: number) => this.#reconnectDelay(attempt),
    } satisfies RedisOptions;
    const cmd = new RedisClient(this.#url, { ...common, ...spec.cmd }) as Cmd;
    // Subscriptions are restored by the owner's recover: ioredis's own resubscription
    // only knows channels confirmed before the outage, not joins and leaves since.
    const sub = new RedisClient(this.#url, {
      ...common,
      autoResubscribe: false,
      ...spec.sub,
    });
    this.#cmd = cmd;
    this.#sub = sub;
    for (const client of [cmd, sub]) {
      client.on('error', (err: Error) => {
        this.#lastError = err;
        this.#logger.debug({ err }, `${this.#label}: redis connection error`);
      });
      client.on('ready', () => this.#onReady());
      client.on('close', () => this.#onDown());
      client.on('end', () => this.#onDown());
    }
    spec.opened?.(sub);
    await new Promise<void>((resolve) => {
      // ioredis's connectTimeout ends the attempt first; this only guards against a
      // connection that neither succeeds nor fails. Unref'd: a bound on a wait must
      // not itself keep the process alive.
      const guard = setTimeout(resolve, this.#connectTimeout + 1_000);
      guard.unref();
      this.#firstOutcome = () => {
        clearTimeout(guard);
        resolve();
      };
    });
  }

  /**
   * A further connection with the same URL, connect timeout and fail-fast settings as
   * the two main ones, plus `options`; for the owner's extra connections (such as
   * blocking reads). Only after {@link open} loaded `ioredis`.
   */
  newClient(options: RedisClientOptions): Redis {
    return new this.#client!(this.#url, {
      connectTimeout: this.#connectTimeout,
      ...FAIL_FAST,
      ...options,
    });
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
    const ceiling = Math.min(this.#maxReconnectDelay, 50 * 2 ** Math.min(attempt - 1, 16));
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
    if (state === 'down') {
      // Once per outage; each reconnect attempt's error goes to debug.
      this.#logger.warn({ err: this.#lastError }, `${this.#label}: redis unavailable`);
    } else this.#logger.info(`${this.#label}: redis ready`);
    try {
      this.#onStatus?.(state);
    } catch (err) {
      this.#logger.error({ err }, `${this.#label}: onStatus threw`);
    }
  }

  #onDown(): void {
    if (this.#state === 'closed') return;
    this.#generation += 1;
    this.#setState('down');
  }

  #onReady(): void {
    if (this.#state === 'closed') return;
    const cmd = this.#cmd;
    const sub = this.#sub;
    if (cmd?.status !== 'ready' || sub?.status !== 'ready') return;
    const generation = ++this.#generation;
    this.#recover(cmd, sub).then(
      () => {
        if (generation === this.#generation) this.#setState('ready');
      },
      (err: unknown) => {
        // The connection dropped again mid-way; its next 'ready' retries.
        this.#logger.debug({ err }, `${this.#label}: recovery failed`);
        if (generation === this.#generation) this.#setState('down');
      },
    );
  }
}
