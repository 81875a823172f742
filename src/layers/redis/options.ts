/**
 * The options {@link RedisChannelLayer} and {@link RedisPresence} share, and their
 * checks, each throwing the exact `TypeError`/`RangeError` message the tests pin.
 *
 * @module
 */
import type { Logger } from 'pino';
import { defaultLogger } from '../../logging.js';
import { clusterNode } from './clients.js';

/**
 * Where Redis is and how to talk to it: the options {@link RedisChannelLayer} and
 * {@link RedisPresence} share. Processes of one deployment pass the same values.
 */
export interface RedisConnectionOptions {
  /**
   * Where Redis is: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * With `cluster`, any one node of the cluster (and no `/db`).
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * `url` names one node of a Redis Cluster: each command goes to the node that owns
   * its key's slot (a group's keys share one slot through its `{group}` hash tag), and
   * the status is `'down'` while any master is unreachable.
   * @default false
   */
  cluster?: boolean;
  /**
   * Starts every key and pub/sub channel (`<prefix>:…`), so that deployments sharing one
   * Redis never see each other's messages, presence or revocations (SPEC §12). Every
   * process of one deployment uses the same prefix. 1 to 64 letters, digits, `-`, `_`,
   * `.` or `:`.
   * @default 'portcullis'
   */
  prefix?: string;
  /** How long one connection attempt may take, in ms. @default 5000 */
  connectTimeout?: number;
  /**
   * How long a command may wait for its reply before it fails with
   * {@link ServiceUnavailableError}, in ms; bounds a call when Redis hangs without
   * closing the connection, and such a failure turns the status `'down'`.
   * @default 1500
   */
  commandTimeout?: number;
  /**
   * Upper bound of the reconnect (and probe) delay, in ms. Delays grow exponentially
   * from 50 ms, with jitter, up to this.
   * @default 2000
   */
  maxReconnectDelay?: number;
  /** Where connection problems are logged. @default warnings and errors to stderr */
  logger?: Logger;
}

const PREFIX_PATTERN = /^[A-Za-z0-9\-_.:]{1,64}$/;

let fallbackLogger: Logger | undefined;

/**
 * The `logger` option, or one shared default (warnings and errors to stderr), made on
 * first use so that an app passing its own logger never builds the default.
 * @internal
 */
export function loggerOrDefault(logger: Logger | undefined): Logger {
  return logger ?? (fallbackLogger ??= defaultLogger());
}

/**
 * @throws {TypeError} unless `url` is a `redis://` or `rediss://` URL and `cluster` a
 * boolean; with `cluster`, unless `url` leaves the database alone (a cluster has only 0).
 * @internal
 */
export function assertRedisUrl(url: unknown, cluster: unknown): asserts url is string {
  if (typeof url !== 'string' || !URL.canParse(url) || !/^rediss?:$/.test(new URL(url).protocol)) {
    throw new TypeError('The "url" option must be a redis:// or rediss:// URL');
  }
  if (typeof cluster !== 'boolean') throw new TypeError('The "cluster" option must be a boolean');
  if (cluster) clusterNode(url);
}

/**
 * True when `prefix` is 1 to 64 letters, digits, `-`, `_`, `.` or `:`: safe inside Redis
 * key and pub/sub channel names, and free of `{}` so it never changes a key's hash slot.
 * @internal
 */
export function isValidPrefix(prefix: unknown): prefix is string {
  return typeof prefix === 'string' && PREFIX_PATTERN.test(prefix);
}

/**
 * @throws {TypeError} unless `prefix` passes {@link isValidPrefix}.
 * @internal
 */
export function assertPrefix(prefix: unknown): asserts prefix is string {
  if (!isValidPrefix(prefix)) {
    throw new TypeError(
      'The "prefix" option must be 1 to 64 letters, digits, "-", "_", "." or ":"',
    );
  }
}

/**
 * Checks options that must be positive integers, in the given order, so the first bad
 * one is the one reported.
 * @throws {RangeError} naming the first option that is not a positive integer.
 * @internal
 */
export function assertPositiveIntegers(options: Record<string, number>): void {
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`The "${name}" option must be a positive integer`);
    }
  }
}

/**
 * @throws {TypeError} when `onStatus` is given but not a function, or `now` is not one.
 * @internal
 */
export function assertStatusAndClock(onStatus: unknown, now: unknown): void {
  if (onStatus !== undefined && typeof onStatus !== 'function') {
    throw new TypeError('The "onStatus" option must be a function');
  }
  if (typeof now !== 'function') {
    throw new TypeError('The "now" option must be a function');
  }
}
