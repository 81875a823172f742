/**
 * Django mode of the gateway (SPEC §11): the Django app's database opened read-only, its
 * schema checked once, the authenticators for DRF tokens, SimpleJWT access tokens and
 * session cookies (each re-checks its live sockets in bulk on the auth middleware's
 * interval), and MultiChat rooms from the app's own room table.
 *
 * @module
 */
import Sqlite from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import {
  djangoSessionAuthenticator,
  drfTokenAuthenticator,
  simpleJwtAuthenticator,
} from '../auth/authenticators/django.js';
import type { DjangoDatabase } from '../auth/authenticators/django.js';
import { expiryTime } from '../auth/authenticators/django/schema.js';
import { decodeSessionData, sessionUser } from '../auth/authenticators/django/session.js';
import { ConfigError, ServiceUnavailableError } from '../errors.js';
import type { ChannelsRedisLayer } from '../layers/channels-redis.js';
import { parseDatabaseUrl, withStatementCache } from '../store/database.js';
import type { RoomInfo, RoomSource } from './apps/multichat/consumer.js';
import type { GatewayDjangoConfig } from './django-config.js';

/** The Django app as the gateway serves it. */
export interface DjangoMode {
  /** In chain order: session cookie, SimpleJWT, DRF token (which takes what is left). */
  readonly authenticators: readonly Authenticator[];
  /** Cookies read as credentials: the session cookie, `JWT` and `key` (SPEC §3, §11). */
  readonly cookieNames: readonly string[];
  /** MultiChat rooms from the Django app's room table; `undefined` when it has none. */
  readonly rooms: RoomSource | undefined;
  /**
   * With `REDIS_URL`: the layer MultiChat shares with the Django app's consumers, in
   * channels_redis's wire format under `CHANNELS_REDIS_PREFIX`.
   */
  readonly channels: ChannelsRedisLayer | undefined;
  /** Resolves when the Django database answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The Django database, opened so that it cannot be written. */
export interface ReadOnlyDjangoDatabase {
  readonly kind: 'sqlite' | 'postgres';
  readonly db: Kysely<DjangoDatabase>;
}

/** Minimum length of a SimpleJWT HMAC key (RFC 7518 §3.2), as `jwtAuthenticator` requires. */
const MIN_HMAC_KEY_BYTES = 32;
/** How many of the newest sessions are tried against `DJANGO_SECRET_KEY` at startup. */
const SECRET_PROBE_SESSIONS = 20;

function describe(url: string): string {
  const target = parseDatabaseUrl(url);
  if (target.kind === 'sqlite') return `sqlite:${target.path}`;
  const parsed = new URL(target.url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Opens the Django database read-only: SQLite with `readonly` and `query_only`,
 * PostgreSQL with `default_transaction_read_only` on every connection, so a write fails
 * in the database itself whatever the code above does. Nothing is ever migrated.
 *
 * @throws {ConfigError} one line naming `DJANGO_DATABASE_URL` when it cannot be opened.
 */
export async function openReadOnlyDjangoDatabase(url: string): Promise<ReadOnlyDjangoDatabase> {
  const target = parseDatabaseUrl(url);
  const where = describe(url);
  if (target.kind === 'sqlite') {
    if (target.path === ':memory:') {
      throw new ConfigError(
        "DJANGO_DATABASE_URL must name the Django app's database file, not :memory:",
      );
    }
    let database: Sqlite.Database;
    try {
      database = new Sqlite(target.path, { readonly: true, fileMustExist: true });
      database.pragma('query_only = ON');
      database.pragma('busy_timeout = 5000');
    } catch (error) {
      // better-sqlite3 reports a missing directory without a code, in a message naming no secret.
      const { code, message } = error as { code?: unknown; message?: unknown };
      const why =
        typeof code === 'string' ? code : String(message).split('\n', 1)[0]!.slice(0, 120);
      throw new ConfigError(
        `DJANGO_DATABASE_URL: cannot open the Django database ${where} (${why})`,
      );
    }
    const db = new Kysely<DjangoDatabase>({
      dialect: new SqliteDialect({ database: withStatementCache(database) }),
    });
    return { kind: 'sqlite', db };
  }
  const parsed = new URL(target.url);
  // pg lets the URL's parameters override the config's: the options go in the config alone.
  const options = [parsed.searchParams.get('options'), '-c default_transaction_read_only=on']
    .filter((part) => part !== null && part !== '')
    .join(' ');
  parsed.searchParams.delete('options');
  const pool = new pg.Pool({
    connectionString: parsed.toString(),
    options,
    connectionTimeoutMillis: 5_000,
    max: 4,
    application_name: 'portcullis-django',
  });
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const db = new Kysely<DjangoDatabase>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (error) {
    await db.destroy().catch(() => undefined);
    const code = (error as { code?: unknown }).code;
    throw new ConfigError(
      `DJANGO_DATABASE_URL: cannot reach the Django database ${where}${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
  return { kind: 'postgres', db };
}

/** Columns by table, for the tables Django mode may read. */
type Columns = ReadonlyMap<string, ReadonlySet<string>>;

async function readColumns(database: ReadOnlyDjangoDatabase): Promise<Columns> {
  const query =
    database.kind === 'sqlite'
      ? sql<{ table_name: string; column_name: string }>`
          select m.name as table_name, p.name as column_name
          from sqlite_master m join pragma_table_info(m.name) p
          where m.type in ('table', 'view')`
      : sql<{ table_name: string; column_name: string }>`
          select table_name, column_name from information_schema.columns
          where table_schema = current_schema()`;
  const { rows } = await query.execute(database.db);
  const columns = new Map<string, Set<string>>();
  for (const { table_name: table, column_name: column } of rows) {
    let set = columns.get(table);
    if (set === undefined) columns.set(table, (set = new Set()));
    set.add(column);
  }
  return columns;
}

const ROOM_COLUMNS = ['id', 'title', 'staff_only'] as const;

function missing(columns: Columns, table: string, needed: readonly string[]): string | undefined {
  const present = columns.get(table);
  return present === undefined ? undefined : needed.find((column) => !present.has(column));
}

/** The room table: `DJANGO_ROOM_TABLE`, else `chat_room`, else the one `*_room` of that shape. */
function findRoomTable(
  columns: Columns,
  configured: string | null,
  logger: Logger,
): string | undefined {
  const shaped = (table: string): boolean =>
    columns.has(table) && missing(columns, table, ROOM_COLUMNS) === undefined;
  if (configured !== null) {
    if (!columns.has(configured)) {
      throw new ConfigError(`DJANGO_ROOM_TABLE: the Django database has no table ${configured}`);
    }
    const absent = missing(columns, configured, ROOM_COLUMNS);
    if (absent !== undefined) {
      throw new ConfigError(
        `DJANGO_ROOM_TABLE: table ${configured} has no column ${absent}; MultiChat rooms need id, title and staff_only`,
      );
    }
    return configured;
  }
  if (shaped('chat_room')) return 'chat_room';
  const candidates = [...columns.keys()].filter(
    (table) => table.endsWith('_room') && shaped(table),
  );
  if (candidates.length === 1) return candidates[0];
  if (candidates.length > 1) {
    logger.warn(
      { tables: candidates.sort() },
      'django mode: several tables look like MultiChat rooms; set DJANGO_ROOM_TABLE to use one',
    );
  }
  return undefined;
}

/** MultiChat rooms read from the Django app's room table. */
function djangoRooms(db: Kysely<DjangoDatabase>, table: string): RoomSource {
  const room = (row: { id: unknown; title: unknown; staff_only: unknown }): RoomInfo => ({
    id: String(row.id),
    title: String(row.title),
    staffOnly: row.staff_only === true || row.staff_only === 1 || row.staff_only === '1',
  });
  const run = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw new ServiceUnavailableError('django database', { cause: error });
    }
  };
  return {
    async getRoom(id) {
      const rows = await run(
        async () =>
          (
            await sql<{ id: unknown; title: unknown; staff_only: unknown }>`
              select id, title, staff_only from ${sql.table(table)} where id = ${Number(id)}`.execute(
              db,
            )
          ).rows,
      );
      return rows[0] === undefined ? undefined : room(rows[0]);
    },
    async listRooms() {
      const rows = await run(
        async () =>
          (
            await sql<{ id: unknown; title: unknown; staff_only: unknown }>`
              select id, title, staff_only from ${sql.table(table)} order by id`.execute(db)
          ).rows,
      );
      return rows.map(room);
    },
  };
}

/**
 * Warns once when `DJANGO_SECRET_KEY` verifies none of the newest live sessions: every
 * session cookie would be refused, and the cause is almost always a key copied wrong.
 */
async function probeSecret(
  db: Kysely<DjangoDatabase>,
  secretKey: string,
  logger: Logger,
): Promise<void> {
  const rows = await db
    .selectFrom('django_session')
    .select(['session_data', 'expire_date'])
    .orderBy('expire_date', 'desc')
    .limit(SECRET_PROBE_SESSIONS)
    .execute();
  const live = rows.filter((row) => expiryTime(row.expire_date) > Date.now());
  if (live.length === 0) return;
  const verified = live.filter(
    (row) => decodeSessionData(row.session_data, secretKey) !== undefined,
  );
  if (verified.length === 0) {
    logger.warn(
      { sessions: live.length },
      'DJANGO_SECRET_KEY verifies none of the newest sessions in django_session: every session cookie will be refused (copy SECRET_KEY from settings.py)',
    );
  } else if (!live.some((row) => sessionUser(decodeSessionData(row.session_data, secretKey)))) {
    logger.info('django mode: the newest sessions verify but none is logged in');
  }
}

/**
 * The key SimpleJWT tokens are verified with: `VERIFYING_KEY`, else
 * `DJANGO_JWT_SIGNING_KEY`, else the secret key; `undefined` when there is none, or when
 * the secret key is too short for HMAC (a warning: the app may not use SimpleJWT).
 * @throws {ConfigError} for a `DJANGO_JWT_SIGNING_KEY` too short for HMAC.
 */
function simpleJwtKey(
  config: GatewayDjangoConfig,
  logger: Logger,
): { verifyingKey: string } | { signingKey: string } | undefined {
  const { simpleJwt } = config;
  if (simpleJwt.verifyingKey !== null) return { verifyingKey: simpleJwt.verifyingKey };
  const signingKey = config.jwtSigningKey ?? config.secretKey;
  if (signingKey === null) return undefined;
  const bytes = Buffer.byteLength(signingKey, 'utf8');
  if (bytes >= MIN_HMAC_KEY_BYTES) return { signingKey };
  if (config.jwtSigningKey !== null) {
    throw new ConfigError(
      `DJANGO_JWT_SIGNING_KEY must be at least ${MIN_HMAC_KEY_BYTES} bytes for ${simpleJwt.algorithm} (it has ${bytes})`,
    );
  }
  logger.warn(
    { bytes },
    `django mode: SimpleJWT tokens are refused: DJANGO_SECRET_KEY is shorter than ${MIN_HMAC_KEY_BYTES} bytes; set DJANGO_JWT_SIGNING_KEY`,
  );
  return undefined;
}

/**
 * Opens and checks the Django app's database and builds what Django mode serves.
 *
 * @throws {ConfigError} one line for a database that cannot be opened, a schema that is
 *   not a Django app's (no user table, a table missing the columns Django 1.8+ has), or
 *   a SimpleJWT key too short for HMAC.
 */
export async function openDjangoMode(
  config: GatewayDjangoConfig,
  redisUrl: string | null,
  logger: Logger,
): Promise<DjangoMode> {
  const database = await openReadOnlyDjangoDatabase(config.databaseUrl);
  const { db } = database;
  let channels: ChannelsRedisLayer | undefined;
  try {
    let columns: Columns;
    try {
      columns = await readColumns(database);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ConfigError(
        `DJANGO_DATABASE_URL: cannot read the schema of ${describe(config.databaseUrl)}${typeof code === 'string' ? ` (${code})` : ''}`,
      );
    }
    const users = config.userTable;
    if (!columns.has(users)) {
      throw new ConfigError(
        `DJANGO_DATABASE_URL: ${describe(config.databaseUrl)} has no ${users} table: point it at the Django app's database after manage.py migrate${users === 'auth_user' ? ' (a custom AUTH_USER_MODEL needs DJANGO_USER_TABLE)' : ''}`,
      );
    }
    const checks: [string, readonly string[]][] = [
      [users, ['id', 'username', 'password', 'is_active', 'is_staff']],
      ['authtoken_token', ['key', 'user_id']],
      ['django_session', ['session_key', 'session_data', 'expire_date']],
    ];
    for (const [table, needed] of checks) {
      const absent = missing(columns, table, needed);
      if (absent !== undefined) {
        throw new ConfigError(
          `DJANGO_DATABASE_URL: table ${table} has no column ${absent}; this schema is not one Portcullis reads (Django 1.8+ with DRF authtoken)`,
        );
      }
    }

    const authenticators: Authenticator[] = [];
    const kinds: string[] = [];
    const { secretKey, simpleJwt } = config;
    if (secretKey !== null) {
      authenticators.push(
        djangoSessionAuthenticator({
          db,
          secretKey,
          cookieName: config.sessionCookie,
          cookieAge: config.sessionCookieAge,
          userTable: users,
        }),
      );
      kinds.push(
        columns.has('django_session')
          ? 'sessions (db and signed cookies)'
          : 'sessions (signed cookies)',
      );
      if (columns.has('django_session')) await probeSecret(db, secretKey, logger);
    }
    const jwtKey = simpleJwtKey(config, logger);
    if (jwtKey !== undefined) {
      authenticators.push(
        simpleJwtAuthenticator({
          ...jwtKey,
          algorithm: simpleJwt.algorithm,
          userIdClaim: simpleJwt.userIdClaim,
          userIdField: simpleJwt.userIdField,
          tokenType: simpleJwt.tokenTypes,
          tokenTypeClaim: simpleJwt.tokenTypeClaim,
          jtiClaim: simpleJwt.jtiClaim,
          ...(simpleJwt.issuer === null ? {} : { issuer: simpleJwt.issuer }),
          ...(simpleJwt.audience === null ? {} : { audience: simpleJwt.audience }),
          leeway: simpleJwt.leeway,
          db,
          userTable: users,
        }),
      );
      kinds.push(`SimpleJWT (${simpleJwt.algorithm})`);
    }
    if (columns.has('authtoken_token')) {
      // Last: it takes every credential the others declined, whatever key Django stored.
      authenticators.push(drfTokenAuthenticator({ db, keys: 'any', userTable: users }));
      kinds.push('DRF tokens');
    }
    if (authenticators.length === 0) {
      throw new ConfigError(
        'DJANGO_DATABASE_URL: nothing to authenticate with: no authtoken_token table, and no DJANGO_SECRET_KEY for sessions or SimpleJWT',
      );
    }
    const roomTable = findRoomTable(columns, config.roomTable, logger);
    if (redisUrl !== null) {
      const { ChannelsRedisLayer: Layer } = await import('../layers/channels-redis.js');
      channels = await Layer.connect({ url: redisUrl, prefix: config.channelsRedisPrefix, logger });
    }
    logger.info(
      {
        database: describe(config.databaseUrl),
        credentials: kinds,
        rooms: roomTable ?? 'portcullis store',
        channelsRedisPrefix: channels === undefined ? null : config.channelsRedisPrefix,
      },
      "django mode: serving the Django app's users (its database read-only)",
    );
    return {
      authenticators,
      cookieNames: [...new Set([config.sessionCookie, 'JWT', 'key'])],
      rooms: roomTable === undefined ? undefined : djangoRooms(db, roomTable),
      channels,
      async ping() {
        await Promise.all([sql`select 1`.execute(db), channels?.ping()]);
      },
      async close() {
        await channels?.close();
        await db.destroy();
      },
    };
  } catch (error) {
    await channels?.close().catch(() => undefined);
    await db.destroy().catch(() => undefined);
    throw error;
  }
}
