/**
 * Gateway mode for a Django app (SPEC §3, §11): Django REST Framework tokens, SimpleJWT
 * access tokens and Django session cookies, read against that app's database (SQLite or
 * PostgreSQL, through Kysely) and its secret, so its users reach the WebSockets with the
 * credentials they already have; and the re-check that closes their sockets when Django
 * ends those credentials.
 *
 * @module
 */
export { drfTokenAuthenticator } from './django/drf-token.js';
export type { DrfTokenAuthenticatorOptions } from './django/drf-token.js';
export { simpleJwtAuthenticator } from './django/simplejwt.js';
export type { SimpleJwtAuthenticatorOptions } from './django/simplejwt.js';
export { djangoSessionAuthenticator } from './django/session.js';
export type { DjangoSessionAuthenticatorOptions } from './django/session.js';
export { djangoRevalidator } from './django/revalidation.js';
export type {
  DjangoRevalidatorOptions,
  RevalidatedSession,
  RevalidationResult,
} from './django/revalidation.js';
export { DJANGO_SOURCE } from './django/schema.js';
export type {
  DjangoAuthTokenTable,
  DjangoAuthUserTable,
  DjangoDatabase,
  DjangoSessionTable,
} from './django/schema.js';
