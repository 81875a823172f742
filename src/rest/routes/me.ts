/**
 * `GET me`: who the caller is, as the same user object the WebSockets get (SPEC §6).
 *
 * @internal
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { User } from '../../auth/user.js';
import { requireUser } from './guards.js';

/** The body of `GET me`. */
export interface MeBody {
  /** A number when the id is a decimal integer (a database id, as DRF returns it), else the string (a JWT `sub`). */
  readonly id: number | string;
  readonly username: string;
  readonly is_staff: boolean;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A user as DRF would serialise it. */
export function meBody(user: User): MeBody {
  const numeric = Number(user.id);
  return {
    id: DECIMAL.test(user.id) && Number.isSafeInteger(numeric) ? numeric : user.id,
    username: user.username,
    is_staff: user.isStaff,
  };
}

/** Registers `GET me`. */
export function registerMeRoute(fastify: FastifyInstance): void {
  fastify.get('/me', { preHandler: requireUser }, async (request) => meBody(request.user));
}
