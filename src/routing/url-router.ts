/**
 * URL routing with path parameters and nesting, as Channels' `URLRouter`.
 *
 * @module
 */
import type { Application, Connection } from '../application.js';
import type { User } from '../auth/user.js';
import { ServiceUnavailableError } from '../errors.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import { deriveScope, NO_PARAMS } from '../scope.js';
import type { Scope } from '../scope.js';

/**
 * Decides whether `user` may connect to a route. Returning `false` closes the
 * connection 4403 `forbidden`.
 */
export type Permission = (
  user: User,
  params: Readonly<Record<string, string>>,
  scope: Scope,
) => boolean | Promise<boolean>;

/** Options of {@link route}. */
export interface RouteOptions {
  /** Checked after authentication, before the app runs; `false` closes 4403. */
  permission?: Permission;
}

/** One entry of a {@link urlRouter}. */
export interface Route {
  readonly pattern: string;
  readonly app: Application;
  readonly permission: Permission | undefined;
  /** @internal */ readonly regex: RegExp;
  /** @internal */ readonly paramNames: readonly string[];
  /** @internal True when `app` is a router: the pattern then matches a prefix. */
  readonly nested: boolean;
}

const kRouter = Symbol('portcullis.urlRouter');
const PARAM = /:([A-Za-z_][A-Za-z0-9_]*)(?:\(([^)]+)\))?/g;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Declares a route. `:name` matches one path segment; `:name(regex)` constrains it.
 * The pattern must match the whole remaining path, unless `app` is itself a
 * {@link urlRouter}, in which case it matches a prefix and the rest, from its last `/`,
 * is routed there (`route('/ws/t/:tenant/', urlRouter([route('/items/', …)]))`).
 *
 * @example
 * ```ts
 * route('/ws/app_:id(\\d+)/', AppConsumer.asApp(), {
 *   permission: (user, { id }) => user.isStaff || canAccess(user, id),
 * });
 * ```
 * @throws {TypeError} for a pattern that does not start with `/` or an app that is not a function.
 */
export function route(pattern: string, app: Application, options: RouteOptions = {}): Route {
  if (typeof pattern !== 'string' || !pattern.startsWith('/')) {
    throw new TypeError(
      `A route pattern must be a string starting with "/", got ${String(pattern)}`,
    );
  }
  if (typeof app !== 'function')
    throw new TypeError(`The app of route ${pattern} must be a function`);
  const nested = kRouter in app;
  // A nested router's patterns start with "/" too: the prefix leaves its final slash to them.
  const own = nested && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
  const paramNames: string[] = [];
  let source = '';
  let last = 0;
  for (const match of own.matchAll(PARAM)) {
    source += escapeRegExp(own.slice(last, match.index));
    paramNames.push(match[1]!);
    source += `(${match[2] ?? '[^/]+'})`;
    last = match.index + match[0].length;
  }
  source += escapeRegExp(own.slice(last));
  let regex: RegExp;
  try {
    regex = new RegExp(`^${source}${nested ? '(?=/)' : '$'}`);
  } catch {
    throw new TypeError(`Invalid route pattern ${pattern}`);
  }
  return { pattern, app, permission: options.permission, regex, paramNames, nested };
}

interface RouteMatch {
  readonly route: Route;
  readonly params: Record<string, string>;
  readonly remainingPath: string;
}

function decodeParam(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

function findRoute(routes: readonly Route[], scope: Scope): RouteMatch | undefined {
  const path = scope.remainingPath ?? scope.path;
  for (const candidate of routes) {
    const match = candidate.regex.exec(path);
    if (match === null) continue;
    const params: Record<string, string> = { ...scope.params };
    let decodable = true;
    candidate.paramNames.forEach((name, index) => {
      const value = decodeParam(match[index + 1] ?? '');
      if (value === undefined) decodable = false;
      else params[name] = value;
    });
    if (!decodable) continue;
    const remainingPath = path.slice(match[0].length);
    const innerScope = deriveScope(scope, { params, remainingPath });
    if (candidate.nested && candidate.app.match !== undefined && !candidate.app.match(innerScope)) {
      continue;
    }
    return { route: candidate, params, remainingPath };
  }
  return undefined;
}

async function checkPermission(
  permission: Permission,
  scope: Scope,
  connection: Connection,
): Promise<boolean> {
  let allowed: boolean;
  try {
    allowed = await permission(scope.user, scope.params, scope);
  } catch (error) {
    if (error instanceof ServiceUnavailableError) {
      connection.close(CloseCode.TryAgainLater, CloseReason.TryAgainLater);
      return false;
    }
    throw error;
  }
  if (!allowed) connection.close(CloseCode.Forbidden, CloseReason.Forbidden);
  return allowed;
}

/**
 * Routes a connection to the first route whose pattern matches its path, adding the
 * route's parameters to `scope.params`. Transports refuse unmatched paths with HTTP 404
 * before any middleware runs.
 *
 * @example
 * ```ts
 * const app = urlRouter([
 *   route('/ws/chat/', ChatConsumer.asApp({ layer })),
 *   route('/ws/rooms/:room/', RoomConsumer.asApp({ layer })),
 * ]);
 * ```
 * @throws {TypeError} when `routes` is empty or not an array of {@link route}s.
 */
export function urlRouter(routes: readonly Route[]): Application {
  if (!Array.isArray(routes) || routes.length === 0) {
    throw new TypeError('urlRouter needs a non-empty array of routes made with route()');
  }
  // Without nested routers a match depends on the path alone: both the transport's
  // match() and the routing itself ask, once per handshake each, so remember recent paths.
  const cacheable = routes.every((candidate) => !candidate.nested);
  const recent = new Map<string, RouteMatch | null>();
  const lookup = (scope: Scope): RouteMatch | undefined => {
    if (!cacheable) return findRoute(routes, scope);
    const path = scope.remainingPath ?? scope.path;
    let found = recent.get(path);
    if (found === undefined) {
      found = findRoute(routes, deriveScope(scope, { params: NO_PARAMS })) ?? null;
      // Shared by every connection to this path: frozen, like the scope's own parts.
      if (found !== null) Object.freeze(found.params);
      if (recent.size >= 1_000) recent.clear();
      recent.set(path, found);
    }
    if (found === null) return undefined;
    if (scope.params === NO_PARAMS) return found;
    return { ...found, params: { ...scope.params, ...found.params } };
  };
  // Not an async function: a route without a permission check adds no promise.
  const router: Application = (scope, connection) => {
    const found = lookup(scope);
    if (found === undefined) {
      // Reached only when an outer middleware bypassed match(): refuse like an unknown path.
      connection.reject(404);
      return undefined;
    }
    const innerScope = deriveScope(scope, {
      params: found.params,
      remainingPath: found.remainingPath,
    });
    const { permission, app } = found.route;
    if (permission === undefined) return app(innerScope, connection);
    return checkPermission(permission, innerScope, connection).then((allowed) =>
      allowed ? app(innerScope, connection) : undefined,
    );
  };
  router.match = (scope) => lookup(scope) !== undefined;
  Object.defineProperty(router, kRouter, { value: true });
  return router;
}
