/**
 * The {@link Store} implementation: one set of Kysely queries for SQLite and PostgreSQL.
 *
 * @internal
 * @module
 */
import { Kysely, Migrator, sql } from 'kysely';
import { ConfigError, ServiceUnavailableError } from '../errors.js';
import { PORTCULLIS_SOURCE } from '../auth/user.js';
import { isStorableText } from '../text.js';
import { SchemaOutdatedError, UsernameTakenError } from './errors.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations/index.js';
import type { Database, DialectKind, Flag } from './schema.js';
import type {
  CreateRoomInput,
  Id,
  LoginRecord,
  NewTicketRow,
  NewTokenRow,
  NewUserRow,
  RevocationEvent,
  Room,
  Store,
  StoredUser,
  TicketConsumption,
  TokenInfo,
  TokenRecord,
} from './store.js';

/** Configuration of a {@link KyselyStore}, after `openStore` validated it. */
export interface KyselyStoreConfig {
  readonly now: () => number;
}

/** `last_used_at` is written at most this often per token. */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Above this many remembered tokens, entries older than the resolution are dropped. */
const LAST_USED_MEMORY = 10_000;
/** Expired tickets are deleted at most this often, piggybacking on ticket creation. */
const TICKET_PURGE_INTERVAL_MS = 60_000;
/** Ids per statement of {@link KyselyStore.getTokens}. */
const TOKENS_PER_QUERY = 1_000;

const USERNAME = /^[\p{L}\p{N}@.+\-_]{1,150}$/u;
const DIGEST = /^[0-9a-f]{64}$/;
const DECIMAL_ID = /^[1-9][0-9]{0,15}$/;
const MAX_TITLE_LENGTH = 200;
const MAX_TOKEN_NAME_LENGTH = 200;

/** A database id from a caller's id, or `undefined` when it cannot name any row. */
function toDbId(id: Id): number | undefined {
  const value = typeof id === 'number' ? id : DECIMAL_ID.test(id) ? Number(id) : NaN;
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

const flag = (value: boolean): Flag => (value ? 1 : 0);
const toDate = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));

type ConstraintKind = 'unique' | 'foreign-key';

/** Which constraint a driver error reports, read from SQLite and PostgreSQL error codes. */
function constraintViolation(error: unknown): ConstraintKind | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  switch (error.code) {
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case '23505':
      return 'unique';
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
    case '23503':
      return 'foreign-key';
    default:
      return undefined;
  }
}

interface UserRow {
  readonly id: number;
  readonly username: string;
  readonly is_staff: Flag;
  readonly is_active: Flag;
  readonly created_at: number;
}

function toStoredUser(row: UserRow): StoredUser {
  return {
    source: PORTCULLIS_SOURCE,
    id: String(row.id),
    username: row.username,
    isStaff: row.is_staff === 1,
    isAnonymous: false,
    isActive: row.is_active === 1,
    createdAt: new Date(row.created_at),
  };
}

interface TokenRow {
  readonly id: number;
  readonly user_id: number;
  readonly name: string;
  readonly created_at: number;
  readonly last_used_at: number | null;
  readonly expires_at: number | null;
  readonly revoked_at: number | null;
}

function toTokenInfo(row: TokenRow): TokenInfo {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    name: row.name,
    createdAt: new Date(row.created_at),
    lastUsedAt: toDate(row.last_used_at),
    expiresAt: toDate(row.expires_at),
    revokedAt: toDate(row.revoked_at),
  };
}

const TOKEN_WITH_USER = [
  'tokens.id',
  'tokens.user_id',
  'tokens.digest',
  'tokens.name',
  'tokens.created_at',
  'tokens.last_used_at',
  'tokens.expires_at',
  'tokens.revoked_at',
  'users.username',
  'users.is_staff',
  'users.is_active',
  'users.created_at as user_created_at',
] as const;

function toTokenRecord(
  row: TokenRow & {
    digest: string;
    username: string;
    is_staff: Flag;
    is_active: Flag;
    user_created_at: number;
  },
): TokenRecord {
  return {
    ...toTokenInfo(row),
    digest: row.digest,
    user: toStoredUser({ ...row, id: row.user_id, created_at: row.user_created_at }),
  };
}

/** The store over a Kysely instance. Construct through `openStore`. */
export class KyselyStore implements Store {
  readonly kind: DialectKind;
  readonly #db: Kysely<Database>;
  readonly #config: KyselyStoreConfig;
  readonly #listeners = new Set<(event: RevocationEvent) => void>();
  /** tokenId → when this process last wrote its `last_used_at`. */
  readonly #lastUsedWrites = new Map<number, number>();
  #lastTicketPurge = -Infinity;
  #closing: Promise<void> | undefined;

  constructor(db: Kysely<Database>, kind: DialectKind, config: KyselyStoreConfig) {
    this.#db = db;
    this.kind = kind;
    this.#config = config;
  }

  /** Runs database work, reporting any driver failure as the database being unavailable. */
  async #run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw new ServiceUnavailableError('database', { cause: error });
    }
  }

  async #migrator(): Promise<Migrator> {
    return new Migrator({
      db: this.#db,
      provider: migrationProvider(this.kind),
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
      // Without a schema, Kysely finds its tables in any schema of the database, so a
      // neighbouring deployment's tables would stop this one's from being created.
      ...(this.kind === 'postgres' ? { migrationTableSchema: await this.#currentSchema() } : {}),
    });
  }

  async migrate(): Promise<readonly string[]> {
    const migrator = await this.#migrator();
    const { error, results = [] } = await this.#run(() => migrator.migrateToLatest());
    if (error !== undefined) {
      // SQLite has no lock to wait on: of two processes migrating one new file at once
      // (two `npm start`), the one whose transaction failed finds the other's schema.
      if (this.kind === 'sqlite' && (await this.#pendingMigrations()).pending.length === 0) {
        return [];
      }
      throw new ServiceUnavailableError('database', { cause: error });
    }
    return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  /** The schema unqualified names resolve to (the first of `search_path` that exists). */
  async #currentSchema(): Promise<string> {
    const { rows } = await this.#run(() =>
      sql<{ schema: string | null }>`select current_schema() as schema`.execute(this.#db),
    );
    const schema = rows[0]?.schema;
    if (schema == null) {
      throw new ConfigError('DATABASE_URL: no schema of its search_path exists (create it first)');
    }
    return schema;
  }

  async checkSchema(): Promise<void> {
    const { pending, known } = await this.#pendingMigrations();
    if (pending.length > 0) throw new SchemaOutdatedError(pending, pending.length === known);
  }

  /** The migrations not applied yet, and how many this version has. */
  async #pendingMigrations(): Promise<{ pending: string[]; known: number }> {
    const migrator = await this.#migrator();
    const migrations = await this.#run(() => migrator.getMigrations());
    const pending = migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
    return { pending, known: migrations.length };
  }

  async ping(): Promise<void> {
    await this.#run(() => sql`select 1`.execute(this.#db));
  }

  close(): Promise<void> {
    this.#closing ??= this.#db.destroy().catch(() => {
      // Closing a pool whose server is gone must not fail a shutdown.
    });
    return this.#closing;
  }

  onRevoke(listener: (event: RevocationEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emitRevoke(userId: number, tokenIds: readonly number[]): void {
    if (tokenIds.length === 0) return;
    const event: RevocationEvent = {
      userId: String(userId),
      tokenIds: tokenIds.map(String),
    };
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        // The revocation is committed; a faulty listener must not make it look failed.
        process.emitWarning(error instanceof Error ? error : String(error));
      }
    }
  }

  // Users

  async insertUser({ username, passwordHash, isStaff = false }: NewUserRow): Promise<StoredUser> {
    if (!USERNAME.test(username)) {
      throw new RangeError('username must be 1 to 150 characters: letters, digits and @ . + - _');
    }
    const createdAt = this.#config.now();
    let row: { id: number };
    try {
      row = await this.#db
        .insertInto('users')
        .values({
          username,
          password_hash: passwordHash,
          is_staff: flag(isStaff),
          is_active: 1,
          created_at: createdAt,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
    } catch (error) {
      if (constraintViolation(error) === 'unique')
        throw new UsernameTakenError(username, { cause: error });
      throw new ServiceUnavailableError('database', { cause: error });
    }
    return toStoredUser({
      id: row.id,
      username,
      is_staff: flag(isStaff),
      is_active: 1,
      created_at: createdAt,
    });
  }

  #selectUsers() {
    return this.#db
      .selectFrom('users')
      .select(['id', 'username', 'is_staff', 'is_active', 'created_at', 'password_hash']);
  }

  async getUserById(id: Id): Promise<StoredUser | undefined> {
    const dbId = toDbId(id);
    if (dbId === undefined) return undefined;
    const row = await this.#run(() =>
      this.#selectUsers().where('id', '=', dbId).executeTakeFirst(),
    );
    return row && toStoredUser(row);
  }

  async getUserByUsername(username: string): Promise<StoredUser | undefined> {
    return (await this.findLogin(username))?.user;
  }

  async findLogin(username: string): Promise<LoginRecord | undefined> {
    // No such username can exist; the driver would fail on it (PostgreSQL and U+0000).
    if (!isStorableText(username)) return undefined;
    const row = await this.#run(() =>
      this.#selectUsers().where('username', '=', username).executeTakeFirst(),
    );
    return row && { user: toStoredUser(row), passwordHash: row.password_hash };
  }

  async setPasswordHash(id: Id, passwordHash: string | null): Promise<boolean> {
    const dbId = toDbId(id);
    if (dbId === undefined) return false;
    const result = await this.#run(() =>
      this.#db
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where('id', '=', dbId)
        .executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }

  async setUserActive(id: Id, active: boolean): Promise<boolean> {
    const dbId = toDbId(id);
    if (dbId === undefined) return false;
    const result = await this.#run(() =>
      this.#db
        .updateTable('users')
        .set({ is_active: flag(active) })
        .where('id', '=', dbId)
        .executeTakeFirst(),
    );
    if (result.numUpdatedRows === 0n) return false;
    if (!active) {
      const live = await this.#run(() =>
        this.#db
          .selectFrom('tokens')
          .select('id')
          .where('user_id', '=', dbId)
          .where('revoked_at', 'is', null)
          .execute(),
      );
      this.#emitRevoke(
        dbId,
        live.map((r) => r.id),
      );
    }
    return true;
  }

  // Tokens

  async insertToken({ userId, digest, name, expiresAt }: NewTokenRow): Promise<TokenInfo> {
    if (name.length > MAX_TOKEN_NAME_LENGTH || !isStorableText(name)) {
      throw new RangeError(
        `token name must be at most ${MAX_TOKEN_NAME_LENGTH} characters, without null characters`,
      );
    }
    if (!DIGEST.test(digest)) throw new RangeError('a token digest is 64 lower-case hex digits');
    const dbUserId = toDbId(userId);
    if (dbUserId === undefined) throw new RangeError(`no user with id ${String(userId)}`);
    const row = {
      user_id: dbUserId,
      digest,
      name,
      created_at: this.#config.now(),
      last_used_at: null,
      expires_at: expiresAt === null ? null : expiresAt.getTime(),
      revoked_at: null,
    };
    let inserted: { id: number };
    try {
      inserted = await this.#db
        .insertInto('tokens')
        .values(row)
        .returning('id')
        .executeTakeFirstOrThrow();
    } catch (error) {
      if (constraintViolation(error) === 'foreign-key') {
        throw new RangeError(`no user with id ${String(userId)}`, { cause: error });
      }
      throw new ServiceUnavailableError('database', { cause: error });
    }
    return toTokenInfo({ ...row, id: inserted.id });
  }

  async findTokenByDigest(digest: string): Promise<TokenRecord | undefined> {
    if (!DIGEST.test(digest)) return undefined;
    const row = await this.#run(() =>
      this.#db
        .selectFrom('tokens')
        .innerJoin('users', 'users.id', 'tokens.user_id')
        .select(TOKEN_WITH_USER)
        .where('tokens.digest', '=', digest)
        .executeTakeFirst(),
    );
    return row && toTokenRecord(row);
  }

  async getTokens(ids: readonly Id[]): Promise<readonly TokenRecord[]> {
    const dbIds = [...new Set(ids.map(toDbId).filter((id) => id !== undefined))];
    const records: TokenRecord[] = [];
    // Bounded statements: SQLite allows 32,766 bound values, PostgreSQL 65,535.
    for (let start = 0; start < dbIds.length; start += TOKENS_PER_QUERY) {
      const slice = dbIds.slice(start, start + TOKENS_PER_QUERY);
      const rows = await this.#run(() =>
        this.#db
          .selectFrom('tokens')
          .innerJoin('users', 'users.id', 'tokens.user_id')
          .select(TOKEN_WITH_USER)
          .where('tokens.id', 'in', slice)
          .execute(),
      );
      for (const row of rows) records.push(toTokenRecord(row));
    }
    return records;
  }

  async touchToken(id: Id, lastUsedAt: Date | null = null): Promise<void> {
    const tokenId = toDbId(id);
    if (tokenId === undefined) return;
    const now = this.#config.now();
    const lastWrite = Math.max(
      lastUsedAt?.getTime() ?? -Infinity,
      this.#lastUsedWrites.get(tokenId) ?? -Infinity,
    );
    if (now - lastWrite < LAST_USED_RESOLUTION_MS) return;
    // Remember before writing, so concurrent verifications of one token write once.
    this.#lastUsedWrites.set(tokenId, now);
    if (this.#lastUsedWrites.size > LAST_USED_MEMORY) {
      for (const [entry, at] of this.#lastUsedWrites) {
        if (now - at >= LAST_USED_RESOLUTION_MS) this.#lastUsedWrites.delete(entry);
      }
    }
    const threshold = now - LAST_USED_RESOLUTION_MS;
    // Conditional, so that several processes verifying one token also write about once.
    await this.#run(() =>
      this.#db
        .updateTable('tokens')
        .set({ last_used_at: now })
        .where('id', '=', tokenId)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', threshold)]))
        .execute(),
    );
  }

  async revokeToken(id: Id): Promise<boolean> {
    const dbId = toDbId(id);
    if (dbId === undefined) return false;
    const now = this.#config.now();
    const row = await this.#run(() =>
      this.#db
        .updateTable('tokens')
        .set({ revoked_at: now })
        .where('id', '=', dbId)
        .where('revoked_at', 'is', null)
        .returning(['id', 'user_id'])
        .executeTakeFirst(),
    );
    if (row === undefined) return false;
    this.#emitRevoke(row.user_id, [row.id]);
    return true;
  }

  async revokeUserTokens(userId: Id): Promise<readonly string[]> {
    const dbUserId = toDbId(userId);
    if (dbUserId === undefined) return [];
    const now = this.#config.now();
    const rows = await this.#run(() =>
      this.#db
        .updateTable('tokens')
        .set({ revoked_at: now })
        .where('user_id', '=', dbUserId)
        .where('revoked_at', 'is', null)
        .returning('id')
        .execute(),
    );
    const ids = rows.map((r) => r.id).sort((a, b) => a - b);
    this.#emitRevoke(dbUserId, ids);
    return ids.map(String);
  }

  async listTokens(userId: Id): Promise<readonly TokenInfo[]> {
    const dbUserId = toDbId(userId);
    if (dbUserId === undefined) return [];
    const rows = await this.#run(() =>
      this.#db
        .selectFrom('tokens')
        .select(['id', 'user_id', 'name', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'])
        .where('user_id', '=', dbUserId)
        .orderBy('id')
        .execute(),
    );
    return rows.map(toTokenInfo);
  }

  // Tickets

  async insertTicket({ digest, userId, tokenId, expiresAt }: NewTicketRow): Promise<void> {
    const dbUserId = toDbId(userId);
    const dbTokenId = toDbId(tokenId);
    if (dbUserId === undefined || dbTokenId === undefined || !DIGEST.test(digest)) {
      throw new RangeError('a ticket needs a digest and the ids of an existing user and token');
    }
    const now = this.#config.now();
    try {
      await this.#db
        .insertInto('tickets')
        .values({
          digest,
          user_id: dbUserId,
          token_id: dbTokenId,
          expires_at: expiresAt.getTime(),
          consumed: 0,
        })
        .execute();
    } catch (error) {
      if (constraintViolation(error) === 'foreign-key') {
        throw new RangeError('a ticket needs a digest and the ids of an existing user and token', {
          cause: error,
        });
      }
      throw new ServiceUnavailableError('database', { cause: error });
    }
    if (now - this.#lastTicketPurge >= TICKET_PURGE_INTERVAL_MS) {
      this.#lastTicketPurge = now;
      await this.#run(() =>
        this.#db.deleteFrom('tickets').where('expires_at', '<=', now).execute(),
      );
    }
  }

  async consumeTicketDigest(digest: string): Promise<TicketConsumption> {
    if (!DIGEST.test(digest)) return { status: 'unknown' };
    const now = this.#config.now();
    // One conditional UPDATE is the whole race: the database lets exactly one
    // transaction flip `consumed` from 0, and every other redemption matches no row.
    const consumed = await this.#run(() =>
      this.#db
        .updateTable('tickets')
        .set({ consumed: 1 })
        .where('digest', '=', digest)
        .where('consumed', '=', 0)
        .where('expires_at', '>', now)
        .returning(['user_id', 'token_id'])
        .executeTakeFirst(),
    );
    if (consumed !== undefined) {
      return {
        status: 'consumed',
        userId: String(consumed.user_id),
        tokenId: String(consumed.token_id),
      };
    }
    const row = await this.#run(() =>
      this.#db
        .selectFrom('tickets')
        .select(['consumed', 'expires_at'])
        .where('digest', '=', digest)
        .executeTakeFirst(),
    );
    // Only an unused ticket reports expiry: a replay stays unknown.
    if (row !== undefined && row.consumed === 0 && row.expires_at <= now) {
      return { status: 'expired' };
    }
    return { status: 'unknown' };
  }

  // Rooms

  async createRoom({ title, staffOnly = false }: CreateRoomInput): Promise<string> {
    if (title.trim() === '' || title.length > MAX_TITLE_LENGTH || !isStorableText(title)) {
      throw new RangeError(
        `room title must be 1 to ${MAX_TITLE_LENGTH} characters, not blank, without null characters`,
      );
    }
    const createdAt = this.#config.now();
    const row = await this.#run(() =>
      this.#db
        .insertInto('rooms')
        .values({ title, staff_only: flag(staffOnly), created_at: createdAt })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    return String(row.id);
  }

  async listRooms(): Promise<readonly Room[]> {
    const rows = await this.#run(() =>
      this.#db
        .selectFrom('rooms')
        .select(['id', 'title', 'staff_only', 'created_at'])
        .orderBy('id')
        .execute(),
    );
    return rows.map(toRoom);
  }

  async getRoom(id: Id): Promise<Room | undefined> {
    const dbId = toDbId(id);
    if (dbId === undefined) return undefined;
    const row = await this.#run(() =>
      this.#db
        .selectFrom('rooms')
        .select(['id', 'title', 'staff_only', 'created_at'])
        .where('id', '=', dbId)
        .executeTakeFirst(),
    );
    return row && toRoom(row);
  }
}

function toRoom(row: { id: number; title: string; staff_only: Flag; created_at: number }): Room {
  return {
    id: String(row.id),
    title: row.title,
    staffOnly: row.staff_only === 1,
    createdAt: new Date(row.created_at),
  };
}

/** Options of `openStore`. */
export interface StoreOptions {
  /**
   * The clock, in milliseconds since the epoch, for the times rows record. Tests inject a
   * fake one instead of sleeping.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Called after every SQL statement, for metrics (database latency) and tests. Gets the
   * SQL text only, never the bound values.
   */
  readonly onQuery?: (event: QueryEvent) => void;
}

/** One executed statement, as reported to {@link StoreOptions.onQuery}. */
export interface QueryEvent {
  /** The SQL text with placeholders. */
  readonly sql: string;
  readonly durationMs: number;
  /** True when the statement failed. */
  readonly failed: boolean;
}

/** Checks `openStore` options once, at construction (STYLE.md practice 4). */
export function resolveStoreOptions(options: StoreOptions): KyselyStoreConfig {
  const { now = Date.now } = options;
  if (typeof now !== 'function') throw new TypeError('options.now must be a function');
  if (options.onQuery !== undefined && typeof options.onQuery !== 'function') {
    throw new TypeError('options.onQuery must be a function');
  }
  return { now };
}
