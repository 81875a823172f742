/**
 * Checks of the options {@link RedisChannelLayer} and {@link RedisPresence} share, each
 * throwing the exact `TypeError`/`RangeError` message the tests pin.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { defaultLogger } from '../../logging.js';

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
 * @throws {TypeError} unless `url` is a `redis://` or `rediss://` URL.
 * @internal
 */
export function assertRedisUrl(url: unknown): asserts url is string {
  if (typeof url !== 'string' || !URL.canParse(url) || !/^rediss?:$/.test(new URL(url).protocol)) {
    throw new TypeError('The "url" option must be a redis:// or rediss:// URL');
  }
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
