/**
 * The authenticator chain shared by sockets and REST (SPEC §3): tried in order, the
 * first that recognises a credential decides.
 *
 * @module
 */
import { AuthenticationError } from '../errors.js';
import type { AuthContext, AuthResult, Authenticator } from './authenticator.js';

/** What the chain decided, and which authenticator decided it. */
export interface ChainResult {
  readonly result: AuthResult;
  readonly authenticator: string;
}

/**
 * Runs `credential` through `authenticators` in order.
 * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` when none recognises it: a
 *   credential that was presented is never treated as anonymous.
 * @throws whatever the deciding authenticator throws (an invalid or expired credential,
 *   {@link ServiceUnavailableError}).
 */
export async function authenticateWithChain(
  authenticators: readonly Authenticator[],
  credential: string,
  context: AuthContext,
): Promise<ChainResult> {
  for (const authenticator of authenticators) {
    const result = await authenticator.authenticate(credential, context);
    if (result !== undefined) return { result, authenticator: authenticator.name };
  }
  throw new AuthenticationError(
    'ERR_INVALID_CREDENTIALS',
    'no authenticator recognised the credential',
  );
}
