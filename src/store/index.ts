/**
 * Storage: rows of users, tokens, tickets and MultiChat rooms on SQLite or PostgreSQL.
 * Creating and checking secrets is `Accounts`' (`portcullis`), not the store's.
 *
 * @module
 */
import { Kysely, type LogEvent } from 'kysely';
import { createDialect, parseDatabaseUrl } from './database.js';
import { KyselyStore, resolveStoreOptions, type StoreOptions } from './kysely-store.js';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/**
 * Opens a store. Nothing connects until the first call; run {@link Store.migrate} before
 * use (the gateway does on start for the embedded SQLite default).
 *
 * - `sqlite:./portcullis.db`, `sqlite:/abs/path.db`: a file, in WAL mode with a 5 s busy
 *   timeout, so a CLI command can write while the gateway runs;
 * - `sqlite::memory:`: a private in-memory database (tests, demos);
 * - `postgres://…` or `postgresql://…`: a pool of up to 10 connections; add
 *   `?options=-c%20search_path%3Dmyschema` to use another schema.
 *
 * @throws {ConfigError} for any other URL, in one line naming `DATABASE_URL`.
 * @throws {RangeError} for invalid options.
 *
 * @example
 * ```ts
 * const store = openStore(process.env.DATABASE_URL ?? 'sqlite:./portcullis.db');
 * await store.migrate();
 * ```
 */
export function openStore(databaseUrl: string, options: StoreOptions = {}): Store {
  const config = resolveStoreOptions(options);
  const { kind, dialect } = createDialect(parseDatabaseUrl(databaseUrl));
  const { onQuery } = options;
  const log =
    onQuery &&
    ((event: LogEvent): void =>
      onQuery({
        sql: event.query.sql,
        durationMs: event.queryDurationMillis,
        failed: event.level === 'error',
      }));
  const db = new Kysely<Database>(log ? { dialect, log } : { dialect });
  return new KyselyStore(db, kind, config);
}

export { parseDatabaseUrl } from './database.js';
export type { DatabaseTarget } from './database.js';
export type { StoreOptions, QueryEvent } from './kysely-store.js';
export { SchemaOutdatedError, UsernameTakenError } from './errors.js';
export type {
  Store,
  Id,
  StoredUser,
  NewUserRow,
  LoginRecord,
  NewTokenRow,
  TokenInfo,
  TokenRecord,
  NewTicketRow,
  TicketConsumption,
  Room,
  CreateRoomInput,
  RevocationEvent,
} from './store.js';
