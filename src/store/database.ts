/**
 * `DATABASE_URL` parsing and Kysely dialects for SQLite (better-sqlite3) and PostgreSQL (pg).
 *
 * @internal
 * @module
 */
import Sqlite from 'better-sqlite3';
import { PostgresDialect, sql, SqliteDialect } from 'kysely';
import type {
  DatabaseIntrospector,
  DatabaseMetadata,
  Dialect,
  Kysely,
  SchemaMetadata,
  SqliteDatabase,
  TableMetadata,
} from 'kysely';
import pg from 'pg';
import { ConfigError } from '../errors.js';
import type { DialectKind } from './schema.js';

/** Where a store's data lives, as parsed from `DATABASE_URL`. */
export type DatabaseTarget =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly url: string };

const USAGE = 'use sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB';

/**
 * Parses a `DATABASE_URL` (SPEC §8): `sqlite:./portcullis.db`, `sqlite:/abs/path.db`,
 * `sqlite:///abs/path.db`, `sqlite::memory:`, `postgres://…` or `postgresql://…`.
 *
 * @throws {ConfigError} one line naming `DATABASE_URL`; it never repeats the URL, which
 *   may hold a password.
 */
export function parseDatabaseUrl(databaseUrl: string): DatabaseTarget {
  if (databaseUrl.startsWith('sqlite:')) {
    let path = databaseUrl.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw new ConfigError(`DATABASE_URL has no SQLite file path; ${USAGE}`);
    return { kind: 'sqlite', path };
  }
  if (databaseUrl.startsWith('postgres://') || databaseUrl.startsWith('postgresql://')) {
    if (!URL.canParse(databaseUrl)) {
      throw new ConfigError(`DATABASE_URL is not a valid PostgreSQL URL; ${USAGE}`);
    }
    return { kind: 'postgres', url: databaseUrl };
  }
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(databaseUrl)?.[0];
  throw new ConfigError(
    scheme === undefined
      ? `DATABASE_URL has no scheme; ${USAGE}`
      : `DATABASE_URL has unsupported scheme "${scheme}"; ${USAGE}`,
  );
}

/** PostgreSQL `int8` (ids, millisecond times, counts) as JS numbers; all stay below 2^53. */
function int8AsNumber(): pg.TypeOverrides {
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
  return types;
}

/** Distinct SQL texts whose prepared statements are kept; the stores use a few dozen. */
const STATEMENT_CACHE_SIZE = 256;

/**
 * @internal better-sqlite3 as Kysely sees it, with prepared statements kept by SQL text. Kysely
 * prepares every query afresh, and preparing costs more than running these small
 * queries: it was the largest Portcullis-side item of a token handshake's profile when
 * verifications fell out of their cache, and of every ticket.
 */
export function withStatementCache(db: Sqlite.Database): SqliteDatabase {
  const statements = new Map<string, Sqlite.Statement>();
  return {
    prepare(sql) {
      let statement = statements.get(sql);
      // A statement still being iterated cannot run again: that query gets its own.
      if (statement === undefined || statement.busy) {
        statement = db.prepare(sql);
        if (statements.size >= STATEMENT_CACHE_SIZE) {
          statements.delete(statements.keys().next().value!);
        }
        statements.set(sql, statement);
      }
      return statement;
    },
    close() {
      statements.clear();
      db.close();
    },
  };
}

/** Builds the Kysely dialect for `target`. Nothing connects until the first query. */
export function createDialect(target: DatabaseTarget): { kind: DialectKind; dialect: Dialect } {
  if (target.kind === 'sqlite') {
    return {
      kind: 'sqlite',
      dialect: new SqliteDialect({
        database: () => {
          // Opened lazily so that an unusable path surfaces as a query error, which the
          // store reports as ServiceUnavailableError like any other database failure.
          const db = new Sqlite(target.path);
          if (target.path !== ':memory:') {
            // WAL lets readers proceed while one process writes (CLI beside a running gateway).
            db.pragma('journal_mode = WAL');
            db.pragma('synchronous = NORMAL');
          }
          db.pragma('busy_timeout = 5000');
          db.pragma('foreign_keys = ON');
          return Promise.resolve(withStatementCache(db));
        },
      }),
    };
  }
  const pool = new pg.Pool({
    connectionString: target.url,
    types: int8AsNumber(),
    connectionTimeoutMillis: 5_000,
  });
  // An idle client whose server goes away emits 'error' on the pool; unhandled, that
  // would crash the process. The next query fails instead and is reported as unavailable.
  pool.on('error', () => {});
  // A client checked out when the server goes away emits 'error' itself (pg-pool listens
  // only on idle ones); its query rejects anyway, so the event needs only a listener.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return { kind: 'postgres', dialect: new CurrentSchemaPostgresDialect({ pool }) };
}

/**
 * PostgreSQL whose introspection sees only the connection's current schema. Kysely's
 * own introspector reads every schema of the database with `has_schema_privilege(name)`,
 * which fails when another session drops a schema meanwhile; the store's migrator is its
 * only user and needs nothing outside the store's own schema.
 */
class CurrentSchemaPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db);
  }
}

/** Table names (no columns: nothing here reads them) of the current schema only. */
class CurrentSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<unknown>;

  constructor(db: Kysely<unknown>) {
    this.#db = db;
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select current_schema() as name`.execute(this.#db);
    return rows.filter((row) => row.name !== null);
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; schema: string; type: string }>`
      select table_name as name, table_schema as schema, table_type as type
      from information_schema.tables where table_schema = current_schema()`.execute(this.#db);
    return rows.map((row) => ({
      name: row.name,
      schema: row.schema,
      isView: row.type === 'VIEW',
      columns: [],
    }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}
