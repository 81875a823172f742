/**
 * Connection limits (SPEC §5: 4429).
 *
 * @module
 */
import { wrapApplication } from '../application.js';
import { identityKey } from '../auth/user.js';
import type { Middleware } from '../application.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';

/** Options of {@link connectionLimits}. `0` switches a limit off. */
export interface ConnectionLimitsOptions {
  /** Open connections allowed in this process. @default 0 (no limit) */
  maxConnections?: number;
  /** Open connections allowed per client address. @default 0 (no limit) */
  maxConnectionsPerAddress?: number;
  /**
   * Open connections allowed per authenticated user, by identity (source and id, SPEC
   * §3). Counts only after the auth middleware: place this middleware inside it.
   * Anonymous connections are not counted. @default 0 (no limit)
   */
  maxConnectionsPerUser?: number;
}

/** Counts open connections per key. */
class Counts {
  readonly #counts = new Map<string, number>();
  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
  add(key: string): void {
    this.#counts.set(key, this.get(key) + 1);
  }
  remove(key: string): void {
    const left = this.get(key) - 1;
    if (left <= 0) this.#counts.delete(key);
    else this.#counts.set(key, left);
  }
}

/**
 * Closes connections over a limit with 4429 `too many connections`. The counts are
 * shared by every connection through this middleware instance (they are limits, not
 * per-connection state).
 *
 * @example
 * ```ts
 * // Per address before authentication, per user after it.
 * const app = stack(
 *   connectionLimits({ maxConnectionsPerAddress: 256 }),
 *   auth,
 *   connectionLimits({ maxConnectionsPerUser: 32 }),
 * )(router);
 * ```
 * @throws {RangeError} for a negative or non-integer limit.
 */
export function connectionLimits(options: ConnectionLimitsOptions = {}): Middleware {
  const { maxConnections = 0, maxConnectionsPerAddress = 0, maxConnectionsPerUser = 0 } = options;
  for (const [name, value] of Object.entries({
    maxConnections,
    maxConnectionsPerAddress,
    maxConnectionsPerUser,
  })) {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`The "${name}" option must be a non-negative integer`);
    }
  }
  let total = 0;
  const perAddress = new Counts();
  const perUser = new Counts();
  return (inner) =>
    wrapApplication(inner, (scope, connection) => {
      const address = maxConnectionsPerAddress > 0 ? scope.client.address : undefined;
      const user =
        maxConnectionsPerUser > 0 && !scope.user.isAnonymous ? identityKey(scope.user) : undefined;
      if (
        (maxConnections > 0 && total >= maxConnections) ||
        (address !== undefined && perAddress.get(address) >= maxConnectionsPerAddress) ||
        (user !== undefined && perUser.get(user) >= maxConnectionsPerUser)
      ) {
        connection.close(CloseCode.TooManyRequests, CloseReason.TooManyConnections);
        return;
      }
      total += 1;
      if (address !== undefined) perAddress.add(address);
      if (user !== undefined) perUser.add(user);
      connection.onClose(() => {
        total -= 1;
        if (address !== undefined) perAddress.remove(address);
        if (user !== undefined) perUser.remove(user);
      });
      return inner(scope, connection);
    });
}
