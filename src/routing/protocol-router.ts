/**
 * Routing by negotiated subprotocol.
 *
 * @module
 */
import type { Application } from '../application.js';
import { deriveScope } from '../scope.js';

/** Options of {@link protocolRouter}. */
export interface ProtocolRouterOptions {
  /** App for clients that offered none of the routed protocols; absent refuses them (400). */
  fallback?: Application;
}

/**
 * Picks an app by the client's offered subprotocols (in the client's order of
 * preference) and records the choice in `scope.protocol`, which consumers accept with.
 *
 * @example
 * ```ts
 * const app = protocolRouter({ 'chat.v2': chatV2, 'chat.v1': chatV1 }, { fallback: chatV1 });
 * ```
 * @throws {TypeError} when a protocol's app is not a function.
 */
export function protocolRouter(
  apps: Readonly<Record<string, Application>>,
  options: ProtocolRouterOptions = {},
): Application {
  const table = new Map<string, Application>();
  for (const [protocol, app] of Object.entries(apps)) {
    if (typeof app !== 'function') {
      throw new TypeError(`The app for protocol ${JSON.stringify(protocol)} must be a function`);
    }
    table.set(protocol, app);
  }
  const { fallback } = options;
  const pick = (offered: readonly string[]): [string | undefined, Application | undefined] => {
    for (const protocol of offered) {
      const app = table.get(protocol);
      if (app !== undefined) return [protocol, app];
    }
    return [undefined, fallback];
  };
  const router: Application = async (scope, connection) => {
    const [protocol, app] = pick(scope.subprotocols);
    if (app === undefined) {
      connection.reject(400);
      return;
    }
    await app(protocol === undefined ? scope : deriveScope(scope, { protocol }), connection);
  };
  router.match = (scope) => {
    const [, app] = pick(scope.subprotocols);
    return app !== undefined && (app.match === undefined || app.match(scope));
  };
  return router;
}
