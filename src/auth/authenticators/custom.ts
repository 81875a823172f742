/**
 * Custom authenticators: plug any credential check (an API key table, an OAuth
 * introspection endpoint) into the same chain as the built-in ones.
 *
 * @module
 */
import type { AuthContext, AuthResult, Authenticator } from '../authenticator.js';
import type { User } from '../user.js';
import { assertName } from './jwt.js';

/**
 * A credential check. Return `undefined` when the credential is not yours (the next
 * authenticator is tried), an {@link AuthResult} to accept it, or throw
 * `AuthenticationError` to refuse it (SPEC §3: a recognised but invalid credential is a
 * failure, not a fall-through) and `ServiceUnavailableError` when you cannot tell.
 */
export type AuthenticateFunction = (
  credential: string,
  context: AuthContext,
) => Promise<CustomAuthResult | undefined>;

/**
 * What an {@link AuthenticateFunction} resolves with: an {@link AuthResult} whose user may
 * leave out `source`, which then is the authenticator's name (SPEC §3 identity).
 */
export interface CustomAuthResult extends Omit<AuthResult, 'user'> {
  readonly user: Omit<User, 'source'> & { readonly source?: string };
}

/**
 * Wraps a function as an {@link Authenticator}.
 *
 * @example
 * ```ts
 * const apiKeys = customAuthenticator('api-key', async (credential) => {
 *   if (!credential.startsWith('ak_')) return undefined;
 *   const row = await findApiKey(credential);
 *   if (row === undefined) throw new AuthenticationError('ERR_INVALID_CREDENTIALS');
 *   return { user: row.user, credentialId: row.id, expiresAt: null };
 * });
 * ```
 *
 * @throws {TypeError} at construction when `name` is empty or `fn` is not a function; from
 *   `authenticate` when `fn` resolves to something that is neither `undefined` nor an
 *   object with a non-anonymous `user`.
 */
export function customAuthenticator(name: string, fn: AuthenticateFunction): Authenticator {
  assertName('customAuthenticator', name);
  if (typeof fn !== 'function') {
    throw new TypeError('customAuthenticator: "fn" must be a function');
  }
  return {
    name,
    async authenticate(credential, context) {
      const result: unknown = await fn(credential, context);
      if (result === undefined) return undefined;
      if (!isAuthResult(result)) {
        // A bug in the wrapped function must not authenticate anybody as anybody.
        throw new TypeError(
          `customAuthenticator(${JSON.stringify(name)}): the function must resolve to undefined or { user, credentialId, expiresAt } with a non-anonymous user`,
        );
      }
      // A user without a source is this authenticator's own (SPEC §3 identity).
      const { user } = result;
      if (typeof user.source === 'string' && user.source !== '') return result;
      return { ...result, user: { ...user, source: name } };
    },
  };
}

function isAuthResult(value: unknown): value is AuthResult {
  if (typeof value !== 'object' || value === null) return false;
  const { user, credentialId, expiresAt } = value as Partial<Record<keyof AuthResult, unknown>>;
  if (typeof user !== 'object' || user === null) return false;
  const { id, isAnonymous } = user as { id?: unknown; isAnonymous?: unknown };
  return (
    typeof id === 'string' &&
    id !== '' &&
    isAnonymous === false &&
    (credentialId === null || typeof credentialId === 'string') &&
    (expiresAt === null || expiresAt instanceof Date)
  );
}
