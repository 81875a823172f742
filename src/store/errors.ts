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

/**
 * The database's schema is missing or older than this version of Portcullis: some of its
 * migrations were never applied. `portcullis migrate` (or `Store.migrate()`) applies
 * them.
 */
export class SchemaOutdatedError extends PortcullisError {
  declare readonly code: 'ERR_SCHEMA_OUTDATED';
  /** The migrations not applied yet, in the order they apply. */
  readonly pending: readonly string[];
  /** True when none is applied: the database has no Portcullis schema at all. */
  readonly missing: boolean;

  constructor(pending: readonly string[], missing: boolean) {
    super(
      'ERR_SCHEMA_OUTDATED',
      missing
        ? 'the database has no Portcullis schema yet'
        : `the database schema is older than this version (${pending.length} migration${pending.length === 1 ? '' : 's'} pending)`,
    );
    this.pending = Object.freeze([...pending]);
    this.missing = missing;
  }
}
