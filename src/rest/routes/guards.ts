/**
 * Route guards for Fastify: hooks that refuse a request before its handler runs.
 *
 * They are callback-style hooks on purpose: a hook that replies and does not call `done`
 * stops the request there, even when an `onSend` hook makes the reply finish later.
 *
 * @module
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { RestDetail, WWW_AUTHENTICATE, type ErrorBody } from '../error-handler.js';

/** A Fastify `onRequest` / `preValidation` / `preHandler` hook. */
export type RouteGuard = (
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
) => void;

/** Sends a DRF-shaped error from a hook, whatever error handler the route's scope has. */
export function refuse(
  reply: FastifyReply,
  statusCode: number,
  body: ErrorBody,
  headers: Readonly<Record<string, string>> = {},
): void {
  void reply
    .code(statusCode)
    .headers(statusCode === 401 ? { 'WWW-Authenticate': WWW_AUTHENTICATE, ...headers } : headers)
    .type('application/json; charset=utf-8')
    .send(body);
}

const NOT_REGISTERED =
  'request.user is not set: register the portcullisRest plugin in this route’s scope or a parent scope';

/**
 * A hook that lets only authenticated requests through: anonymous ones get
 * `401 {"detail": "Authentication credentials were not provided."}` with
 * `WWW-Authenticate: Token`, as DRF's `IsAuthenticated`. Requests with an invalid
 * credential never get this far (the plugin answers them 401 first).
 *
 * @example
 * ```ts
 * fastify.get('/api/orders', { preHandler: requireUser }, async (request) =>
 *   listOrders(request.user.id),
 * );
 * ```
 * @throws {Error} (a 500 for the client) when the `portcullisRest` plugin does not cover the route.
 */
export const requireUser: RouteGuard = (request, reply, done) => {
  const user = request.user as FastifyRequest['user'] | null | undefined;
  if (user == null) {
    done(new Error(NOT_REGISTERED));
    return;
  }
  if (user.isAnonymous) {
    refuse(reply, 401, { detail: RestDetail.NotAuthenticated });
    return;
  }
  done();
};

/**
 * Like {@link requireUser}, and then `403 {"detail": "You do not have permission to
 * perform this action."}` unless the user is staff (`is_staff`), as DRF's `IsAdminUser`.
 *
 * @example
 * ```ts
 * fastify.post('/api/rooms', { preHandler: requireStaff }, createRoom);
 * ```
 */
export const requireStaff: RouteGuard = (request, reply, done) => {
  requireUser(request, reply, (error) => {
    if (error !== undefined) {
      done(error);
      return;
    }
    if (!request.user.isStaff) {
      refuse(reply, 403, { detail: RestDetail.PermissionDenied });
      return;
    }
    done();
  });
};

/**
 * Like {@link requireUser}, and then `403` unless the request was authenticated by a
 * Portcullis token (the `token` authenticator): tickets are tied to the token that asked
 * for them and logout revokes that token, which a JWT or a DRF token is not (SPEC §4).
 */
export const requirePortcullisToken: RouteGuard = (request, reply, done) => {
  requireUser(request, reply, (error) => {
    if (error !== undefined) {
      done(error);
      return;
    }
    const { auth } = request;
    if (auth === null || auth.authenticator !== 'token' || auth.credentialId === null) {
      refuse(reply, 403, { detail: RestDetail.PortcullisTokenRequired });
      return;
    }
    done();
  });
};
