/**
 * Origin allow-list middleware (SPEC §3 "Origin").
 *
 * @module
 */
import { wrapApplication } from '../application.js';
import type { Middleware } from '../application.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';

/** Options of {@link originCheck}. */
export interface OriginCheckOptions {
  /**
   * Allowed origins, compared exactly on scheme, host and port (`http://localhost:8000`),
   * or a predicate. `null` (the literal origin sandboxed pages send) is never allowed.
   */
  allowedOrigins: readonly string[] | ((origin: string) => boolean);
  /**
   * Whether a connection without any `Origin` header (a non-browser client) passes.
   * @default true
   */
  allowMissing?: boolean;
}

/**
 * Normalises an origin to `scheme://host[:port]` (default ports dropped, lower case), or
 * `undefined` when it is not a valid http(s)/ws(s) origin.
 */
export function normalizeOrigin(origin: string): string | undefined {
  if (origin === 'null') return undefined;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) return undefined;
  return url.origin;
}

/**
 * Builds a predicate telling whether an `Origin` header value is allowed.
 * @throws {TypeError} for an entry in the list that is not a valid origin.
 */
export function originMatcher(
  allowedOrigins: OriginCheckOptions['allowedOrigins'],
): (origin: string) => boolean {
  if (typeof allowedOrigins === 'function') {
    return (origin) => origin !== 'null' && allowedOrigins(origin);
  }
  if (!Array.isArray(allowedOrigins)) {
    throw new TypeError('"allowedOrigins" must be an array of origins or a function');
  }
  const allowed = new Set<string>();
  for (const entry of allowedOrigins) {
    const normalized = typeof entry === 'string' ? normalizeOrigin(entry) : undefined;
    if (normalized === undefined)
      throw new TypeError(`Invalid origin in "allowedOrigins": ${String(entry)}`);
    allowed.add(normalized);
  }
  return (origin) => {
    const normalized = normalizeOrigin(origin);
    return normalized !== undefined && allowed.has(normalized);
  };
}

/**
 * Closes connections from origins not in the allow-list with 4403 `origin not allowed`.
 * This applies to every connection; the auth middleware applies the same rule to
 * cookie-authenticated connections only, which is what cross-site WebSocket hijacking
 * needs.
 *
 * @example
 * ```ts
 * const app = originCheck({ allowedOrigins: ['https://app.example.com'] })(router);
 * ```
 * @throws {TypeError} for invalid options.
 */
export function originCheck(options: OriginCheckOptions): Middleware {
  const { allowMissing = true } = options;
  const isAllowed = originMatcher(options.allowedOrigins);
  return (inner) =>
    wrapApplication(inner, (scope, connection) => {
      const allowed = scope.origin === null ? allowMissing : isAllowed(scope.origin);
      if (!allowed) {
        connection.close(CloseCode.Forbidden, CloseReason.OriginNotAllowed);
        return;
      }
      return inner(scope, connection);
    });
}
