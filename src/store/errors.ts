/**
 * Store-specific errors.
 *
 * @module
 */
import { PortcullisError } from '../errors.js';

/**
 * `createUser` was given a username that already exists. Carries a stable `code` so
 * callers never match driver messages (which differ between SQLite and PostgreSQL).
 */
export class UsernameTakenError extends PortcullisError {
  declare readonly code: 'ERR_USERNAME_TAKEN';
  readonly username: string;

  constructor(username: string, options?: ErrorOptions) {
    super('ERR_USERNAME_TAKEN', `username ${JSON.stringify(username)} is already taken`, options);
    this.username = username;
  }
}
