/**
 * Connection limits (SPEC §5: 4429).
 *
 * @module
 */
import { wrapApplication } from '../application.js';
import type { Middleware } from '../application.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';

/** Options of {@link connectionLimits}. `0` switches a limit off. */
export interface ConnectionLimitsOptions {
  /** Open connections allowed in this process. @default 0 (no limit) */
  maxConnections?: number;
  /** Open connections allowed per client address. @default 0 (no limit) */
  maxConnectionsPerAddress?: number;
}

/**
 * Closes connections over a limit with 4429 `too many connections`. The counts are
 * shared by every connection through this middleware instance (they are limits, not
 * per-connection state).
 *
 * @example
 * ```ts
 * const app = connectionLimits({ maxConnectionsPerAddress: 50 })(router);
 * ```
 * @throws {RangeError} for a negative or non-integer limit.
 */
export function connectionLimits(options: ConnectionLimitsOptions = {}): Middleware {
  const { maxConnections = 0, maxConnectionsPerAddress = 0 } = options;
  for (const [name, value] of Object.entries({ maxConnections, maxConnectionsPerAddress })) {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`The "${name}" option must be a non-negative integer`);
    }
  }
  let total = 0;
  const perAddress = new Map<string, number>();
  return (inner) =>
    wrapApplication(inner, (scope, connection) => {
      const address = scope.client.address;
      const fromAddress = perAddress.get(address) ?? 0;
      if (
        (maxConnections > 0 && total >= maxConnections) ||
        (maxConnectionsPerAddress > 0 && fromAddress >= maxConnectionsPerAddress)
      ) {
        connection.close(CloseCode.TooManyRequests, CloseReason.TooManyConnections);
        return;
      }
      total += 1;
      perAddress.set(address, fromAddress + 1);
      connection.onClose(() => {
        total -= 1;
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left <= 0) perAddress.delete(address);
        else perAddress.set(address, left);
      });
      return inner(scope, connection);
    });
}
