/**
 * Store-specific errors.
 *
 * @module
 */

/**
 * `createUser` was given a username that already exists. Carries a stable `code` so
 * callers never match driver messages (which differ between SQLite and PostgreSQL).
 */
export class UsernameTakenError extends Error {
  readonly code = 'ERR_USERNAME_TAKEN';
  readonly username: string;

  constructor(username: string, options?: ErrorOptions) {
    super(`username ${JSON.stringify(username)} is already taken`, options);
    this.name = 'UsernameTakenError';
    this.username = username;
  }
}
