/**
 * The token API (SPEC §6) in Django REST Framework's shapes: `POST auth/token` as DRF's
 * `obtain_auth_token`, then tickets and logout for the token it returned.
 *
 * @internal
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { AddressWindowLimiter } from '../../auth/rate-limit.js';
import { identityKey } from '../../auth/user.js';
import { unstorableText } from '../../text.js';
import { RestDetail, RestError, type FieldErrors } from '../error-handler.js';
import type { ResolvedRateLimit, RouteContext } from './context.js';
import { refuse, requirePortcullisToken, type RouteGuard } from './guards.js';

/** The body of `POST auth/token`. */
interface LoginBody {
  readonly username: string;
  readonly password: string;
}

/**
 * The JSON schema of `POST auth/token`, for documentation generators; it is enforced by
 * {@link drfStringFields}, which reports every field at once as DRF does (Fastify's Ajv
 * stops at the first error).
 */
export const LOGIN_BODY_SCHEMA = {
  type: 'object',
  required: ['username', 'password'],
  properties: {
    // Django's limit on usernames.
    username: { type: 'string', minLength: 1, maxLength: 150 },
    // Bounds the work of hashing an attacker's "password".
    password: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

/** The subset of JSON schema {@link drfStringFields} reads: required string fields. */
interface StringFieldsSchema {
  readonly required: readonly string[];
  readonly properties: Readonly<Record<string, { readonly maxLength: number }>>;
}

/** Python's name for a JSON value's type, as DRF words "Expected a dictionary, but got list." */
function pythonTypeName(value: unknown): string {
  if (Array.isArray(value)) return 'list';
  switch (typeof value) {
    case 'string':
      return 'str';
    case 'number':
      return Number.isInteger(value) ? 'int' : 'float';
    case 'boolean':
      return 'bool';
    default:
      return 'NoneType';
  }
}

/**
 * A route `validatorCompiler` for bodies of required string fields, with the messages
 * of DRF's `CharField`: numbers are accepted as their text, as DRF accepts them.
 */
const drfStringFields: FastifySchemaCompiler<unknown> = ({ schema }) => {
  const { required, properties } = schema as StringFieldsSchema;
  return (data: unknown) => {
    // Fastify passes `null` for a request without a body; DRF sees empty data.
    const body = data ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) {
      const message = `Invalid data. Expected a dictionary, but got ${pythonTypeName(body)}.`;
      return { error: new RestError(400, { non_field_errors: [message] }) };
    }
    const fields: Record<string, string[]> = {};
    const value: Record<string, string> = {};
    for (const name of required) {
      const raw: unknown = Object.hasOwn(body, name)
        ? (body as Record<string, unknown>)[name]
        : undefined;
      const text = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
      const maxLength = properties[name]?.maxLength ?? Infinity;
      if (text === undefined) fields[name] = [RestDetail.FieldRequired];
      else if (text === null) fields[name] = ['This field may not be null.'];
      else if (typeof text !== 'string') fields[name] = ['Not a valid string.'];
      else if (text === '') fields[name] = ['This field may not be blank.'];
      else if (text.length > maxLength)
        fields[name] = [`Ensure this field has no more than ${maxLength} characters.`];
      // Before any driver sees it: PostgreSQL refuses U+0000 with an error (issue 16).
      else if (unstorableText(text) !== undefined) fields[name] = [unstorableText(text)!];
      else value[name] = text;
    }
    if (Object.keys(fields).length > 0) {
      return { error: new RestError(400, fields satisfies FieldErrors) };
    }
    return { value };
  };
};

/**
 * A throttle hook: `429` with DRF's text and `Retry-After` once `keyOf(request)` used up
 * its window. Every attempt counts.
 */
function throttle(
  context: RouteContext,
  limit: ResolvedRateLimit,
  keyOf: (request: FastifyRequest) => string,
  what: string,
): RouteGuard {
  const { max, windowMs } = limit;
  const limiter = limit.limiter ?? new AddressWindowLimiter({ max, windowMs, now: context.now });
  return (request, reply, done) => {
    Promise.resolve()
      .then(() => limiter.hit(keyOf(request)))
      .then(
        (wait) => (wait === 0 ? done() : throttled(request, reply, wait)),
        (error: unknown) => {
          (context.logger ?? request.log).warn(
            { reqId: request.id, err: error },
            `${what}: cannot count`,
          );
          refuse(reply, 503, { detail: RestDetail.ServiceUnavailable });
        },
      );
  };

  function throttled(request: FastifyRequest, reply: FastifyReply, wait: number): void {
    (context.logger ?? request.log).info(
      { reqId: request.id, remoteAddress: request.ip },
      `${what} throttled`,
    );
    refuse(
      reply,
      429,
      {
        detail: `Request was throttled. Expected available in ${wait} second${wait === 1 ? '' : 's'}.`,
      },
      { 'Retry-After': String(wait) },
    );
  }
}

/** The caller's token id; {@link requirePortcullisToken} ran before, so it is there. */
function callerTokenId(request: FastifyRequest): string {
  const tokenId = request.auth?.credentialId;
  if (tokenId == null) throw new RestError(403, RestDetail.PortcullisTokenRequired);
  return tokenId;
}

/**
 * Runs a revocation hook. A failure there is logged and not returned to the client: the
 * credential is already revoked in the store, so a retry could not authenticate anyway.
 */
async function closeSockets(
  context: RouteContext,
  request: FastifyRequest,
  what: string,
  revoke: () => Promise<void>,
): Promise<void> {
  try {
    await revoke();
  } catch (error) {
    (context.logger ?? request.log).error(
      { err: error, reqId: request.id },
      `${what} revoked, but its live WebSockets could not be closed`,
    );
  }
}

/** Registers `auth/token`, `auth/ticket`, `auth/logout` and `auth/logout-all`. */
export function registerAuthRoutes(fastify: FastifyInstance, context: RouteContext): void {
  const { store, accounts, authenticators, revoke } = context;

  fastify.post<{ Body: LoginBody }>(
    '/auth/token',
    {
      schema: { body: LOGIN_BODY_SCHEMA },
      validatorCompiler: drfStringFields,
      // A login body is two short strings; anything bigger is refused before parsing.
      bodyLimit: 8 * 1024,
      onRequest: throttle(context, context.loginRateLimit, (request) => request.ip, 'login'),
    },
    async (request, reply) => {
      const { username, password } = request.body;
      const user = await accounts.authenticatePassword(username, password);
      if (user === null) {
        throw new RestError(400, { non_field_errors: [RestDetail.InvalidLogin] });
      }
      const created = await accounts.createToken(user.id, { name: 'login' });
      (context.logger ?? request.log).info(
        { reqId: request.id, userId: user.id, tokenId: created.id },
        'token issued',
      );
      // RFC 6749 §5.1: responses carrying credentials must not be cached.
      void reply.header('Cache-Control', 'no-store');
      return { token: created.token, expires_at: created.expiresAt?.toISOString() ?? null };
    },
  );

  // Per user (SPEC §3 identity): a ticket costs a database write, and a stolen token
  // must not mint them without bound (issue 16).
  const ticketThrottle = throttle(
    context,
    context.ticketRateLimit,
    (request) => identityKey(request.user),
    'ticket issuance',
  );
  fastify.post(
    '/auth/ticket',
    { preHandler: [requirePortcullisToken, ticketThrottle] },
    async (request, reply) => {
      const { ticket, expiresIn } = await accounts.createTicket(
        request.user.id,
        callerTokenId(request),
      );
      void reply.header('Cache-Control', 'no-store');
      return { ticket, expires_in: expiresIn };
    },
  );

  fastify.post(
    '/auth/logout',
    { preHandler: requirePortcullisToken },
    async (request, reply): Promise<FastifyReply> => {
      const tokenId = callerTokenId(request);
      await store.revokeToken(tokenId);
      (context.logger ?? request.log).info(
        { reqId: request.id, userId: request.user.id, tokenId },
        'token revoked (logout)',
      );
      // The store tells authenticators built on it; these may be built on another instance.
      for (const authenticator of authenticators) authenticator.invalidateCredential?.(tokenId);
      if (revoke !== undefined) {
        await closeSockets(context, request, 'token', () => revoke.credential(tokenId));
      }
      return reply.code(204).send();
    },
  );

  fastify.post(
    '/auth/logout-all',
    { preHandler: requirePortcullisToken },
    async (request, reply): Promise<FastifyReply> => {
      const userId = request.user.id;
      const tokenIds = await store.revokeUserTokens(userId);
      (context.logger ?? request.log).info(
        { reqId: request.id, userId, tokenIds },
        'every token of the user revoked (logout-all)',
      );
      for (const authenticator of authenticators) authenticator.invalidateUser?.(userId);
      if (revoke !== undefined) {
        await closeSockets(context, request, 'user tokens', () => revoke.user(userId));
      }
      return reply.code(204).send();
    },
  );
}
