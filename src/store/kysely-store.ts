/**
 * The {@link Store} implementation: one set of Kysely queries for SQLite and PostgreSQL.
 *
 * @internal
 * @module
 */
import { Kysely, Migrator, sql } from 'kysely';
import { AuthenticationError, ConfigError, ServiceUnavailableError } from '../errors.js';
import {
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  isValidScryptParams,
  verifyPasswordOrDummy,
  type ScryptParams,
} from '../auth/passwords.js';
import { generateTicket, parseTicket, TICKET_TTL_MS } from '../auth/tickets.js';
import { constantTimeEqual, digestToken, generateToken, parseToken } from '../auth/tokens.js';
import type { User } from '../auth/user.js';
import { SchemaOutdatedError, UsernameTakenError } from './errors.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations/index.js';
import type { Database, DialectKind, Flag } from './schema.js';
import type {
  CreatedTicket,
  CreatedToken,
  CreateRoomInput,
  CreateTokenOptions,
  CreateUserInput,
  Id,
  RedeemedTicket,
  RevocationEvent,
  Room,
  Store,
  StoredUser,
  TokenInfo,
  VerifiedToken,
} from './store.js';

/** Configuration of a {@link KyselyStore}, after `openStore` validated it. */
export interface KyselyStoreConfig {
  readonly now: () => number;
  readonly tokenTtlMs: number | null;
  readonly passwordParams: ScryptParams;
}

/** `last_used_at` is written at most this often per token. */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Above this many remembered tokens, entries older than the resolution are dropped. */
const LAST_USED_MEMORY = 10_000;
/** Expired tickets are deleted at most this often, piggybacking on ticket creation. */
const TICKET_PURGE_INTERVAL_MS = 60_000;

const USERNAME = /^[\p{L}\p{N}@.+\-_]{1,150}$/u;
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
}

function toUser(row: UserRow): User {
  return {
    id: String(row.id),
    username: row.username,
    isStaff: row.is_staff === 1,
    isAnonymous: false,
  };
}

const invalid = (): AuthenticationError => new AuthenticationError('ERR_INVALID_CREDENTIALS');
const expired = (): AuthenticationError =>
  new AuthenticationError('ERR_TOKEN_EXPIRED', 'token expired');
const revoked = (): AuthenticationError =>
  new AuthenticationError('ERR_TOKEN_REVOKED', 'token revoked');

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

  async createUser({ username, password, isStaff = false }: CreateUserInput): Promise<StoredUser> {
    if (!USERNAME.test(username)) {
      throw new RangeError('username must be 1 to 150 characters: letters, digits and @ . + - _');
    }
    const passwordHash =
      password === undefined ? null : await hashPassword(password, this.#config.passwordParams);
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
    return {
      id: String(row.id),
      username,
      isStaff,
      isAnonymous: false,
      isActive: true,
      createdAt: new Date(createdAt),
    };
  }

  #selectUsers() {
    return this.#db
      .selectFrom('users')
      .select(['id', 'username', 'is_staff', 'is_active', 'created_at', 'password_hash']);
  }

  #toStoredUser(row: UserRow & { is_active: Flag; created_at: number }): StoredUser {
    return { ...toUser(row), isActive: row.is_active === 1, createdAt: new Date(row.created_at) };
  }

  async getUserById(id: Id): Promise<StoredUser | undefined> {
    const dbId = toDbId(id);
    if (dbId === undefined) return undefined;
    const row = await this.#run(() =>
      this.#selectUsers().where('id', '=', dbId).executeTakeFirst(),
    );
    return row && this.#toStoredUser(row);
  }

  async getUserByUsername(username: string): Promise<StoredUser | undefined> {
    const row = await this.#run(() =>
      this.#selectUsers().where('username', '=', username).executeTakeFirst(),
    );
    return row && this.#toStoredUser(row);
  }

  async setUserPassword(id: Id, password: string): Promise<boolean> {
    const dbId = toDbId(id);
    if (dbId === undefined) return false;
    const passwordHash = await hashPassword(password, this.#config.passwordParams);
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

  async authenticatePassword(username: string, password: string): Promise<User | null> {
    const row = await this.#run(() =>
      this.#selectUsers().where('username', '=', username).executeTakeFirst(),
    );
    // Always run scrypt, so unknown users and users without a password take as long.
    const ok = await verifyPasswordOrDummy(
      password,
      row?.password_hash,
      this.#config.passwordParams,
    );
    if (!ok || row === undefined || row.is_active !== 1) return null;
    return toUser(row);
  }

  // Tokens

  async createToken(userId: Id, options: CreateTokenOptions = {}): Promise<CreatedToken> {
    const { name = '', ttlMs = this.#config.tokenTtlMs } = options;
    if (ttlMs !== null && !(Number.isSafeInteger(ttlMs) && ttlMs > 0)) {
      throw new RangeError('ttlMs must be a positive integer number of milliseconds, or null');
    }
    if (name.length > MAX_TOKEN_NAME_LENGTH) {
      throw new RangeError(`token name must be at most ${MAX_TOKEN_NAME_LENGTH} characters`);
    }
    const dbUserId = toDbId(userId);
    if (dbUserId === undefined) throw new RangeError(`no user with id ${String(userId)}`);
    const token = generateToken();
    const now = this.#config.now();
    const expiresAt = ttlMs === null ? null : now + ttlMs;
    let row: { id: number };
    try {
      row = await this.#db
        .insertInto('tokens')
        .values({
          user_id: dbUserId,
          digest: digestToken(token),
          name,
          created_at: now,
          last_used_at: null,
          expires_at: expiresAt,
          revoked_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
    } catch (error) {
      if (constraintViolation(error) === 'foreign-key') {
        throw new RangeError(`no user with id ${String(userId)}`, { cause: error });
      }
      throw new ServiceUnavailableError('database', { cause: error });
    }
    return { token, id: String(row.id), expiresAt: toDate(expiresAt) };
  }

  async verifyToken(token: string): Promise<VerifiedToken> {
    if (parseToken(token) === undefined) throw invalid();
    const digest = digestToken(token);
    const row = await this.#run(() =>
      this.#db
        .selectFrom('tokens')
        .innerJoin('users', 'users.id', 'tokens.user_id')
        .select([
          'tokens.id as token_id',
          'tokens.digest',
          'tokens.last_used_at',
          'tokens.expires_at',
          'tokens.revoked_at',
          'users.id',
          'users.username',
          'users.is_staff',
          'users.is_active',
        ])
        .where('tokens.digest', '=', digest)
        .executeTakeFirst(),
    );
    // The index lookup already matched; the constant-time compare is defence in depth
    // against a collation or padding surprise in either database.
    if (row === undefined || !constantTimeEqual(row.digest, digest)) throw invalid();
    if (row.revoked_at !== null) throw revoked();
    const now = this.#config.now();
    if (row.expires_at !== null && row.expires_at <= now) throw expired();
    if (row.is_active !== 1) throw invalid();
    await this.#touch(row.token_id, row.last_used_at, now);
    return { user: toUser(row), tokenId: String(row.token_id), expiresAt: toDate(row.expires_at) };
  }

  /** Records a use of a token, writing at most once per {@link LAST_USED_RESOLUTION_MS}. */
  async #touch(tokenId: number, lastUsedAt: number | null, now: number): Promise<void> {
    const lastWrite = Math.max(
      lastUsedAt ?? -Infinity,
      this.#lastUsedWrites.get(tokenId) ?? -Infinity,
    );
    if (now - lastWrite < LAST_USED_RESOLUTION_MS) return;
    // Remember before writing, so concurrent verifications of one token write once.
    this.#lastUsedWrites.set(tokenId, now);
    if (this.#lastUsedWrites.size > LAST_USED_MEMORY) {
      for (const [id, at] of this.#lastUsedWrites) {
        if (now - at >= LAST_USED_RESOLUTION_MS) this.#lastUsedWrites.delete(id);
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
    return rows.map((row) => ({
      id: String(row.id),
      userId: String(row.user_id),
      name: row.name,
      createdAt: new Date(row.created_at),
      lastUsedAt: toDate(row.last_used_at),
      expiresAt: toDate(row.expires_at),
      revokedAt: toDate(row.revoked_at),
    }));
  }

  // Tickets

  async createTicket(userId: Id, tokenId: Id): Promise<CreatedTicket> {
    const dbUserId = toDbId(userId);
    const dbTokenId = toDbId(tokenId);
    if (dbUserId === undefined || dbTokenId === undefined) {
      throw new RangeError('createTicket needs the ids of an existing user and token');
    }
    const ticket = generateTicket();
    const now = this.#config.now();
    try {
      await this.#db
        .insertInto('tickets')
        .values({
          digest: digestToken(ticket),
          user_id: dbUserId,
          token_id: dbTokenId,
          expires_at: now + TICKET_TTL_MS,
          consumed: 0,
        })
        .execute();
    } catch (error) {
      if (constraintViolation(error) === 'foreign-key') {
        throw new RangeError('createTicket needs the ids of an existing user and token', {
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
    return { ticket, expiresIn: TICKET_TTL_MS / 1000 };
  }

  async consumeTicket(ticket: string): Promise<RedeemedTicket> {
    if (parseTicket(ticket) === undefined) throw invalid();
    const digest = digestToken(ticket);
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
    if (consumed === undefined) {
      const row = await this.#run(() =>
        this.#db
          .selectFrom('tickets')
          .select(['consumed', 'expires_at'])
          .where('digest', '=', digest)
          .executeTakeFirst(),
      );
      // Only an unused ticket reports expiry: a replay stays "invalid credentials".
      if (row !== undefined && row.consumed === 0 && row.expires_at <= now) throw expired();
      throw invalid();
    }
    const row = await this.#run(() =>
      this.#db
        .selectFrom('tokens')
        .innerJoin('users', 'users.id', 'tokens.user_id')
        .select([
          'tokens.expires_at',
          'tokens.revoked_at',
          'users.id',
          'users.username',
          'users.is_staff',
          'users.is_active',
        ])
        .where('tokens.id', '=', consumed.token_id)
        .executeTakeFirst(),
    );
    if (row === undefined || row.id !== consumed.user_id) throw invalid();
    if (row.revoked_at !== null) throw revoked();
    if (row.expires_at !== null && row.expires_at <= now) throw expired();
    if (row.is_active !== 1) throw invalid();
    return {
      user: toUser(row),
      tokenId: String(consumed.token_id),
      expiresAt: toDate(row.expires_at),
    };
  }

  // Rooms

  async createRoom({ title, staffOnly = false }: CreateRoomInput): Promise<string> {
    if (title.trim() === '' || title.length > MAX_TITLE_LENGTH) {
      throw new RangeError(`room title must be 1 to ${MAX_TITLE_LENGTH} characters, not blank`);
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
   * The clock, in milliseconds since the epoch. Tests inject a fake one instead of sleeping.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Default token lifetime in milliseconds; `null` for tokens that never expire
   * (`TOKEN_TTL`, SPEC §8). A token's own `ttlMs` overrides it.
   * @default 2_592_000_000 (30 days)
   */
  readonly tokenTtlMs?: number | null;
  /**
   * scrypt cost for new password hashes (existing hashes keep theirs).
   * @default DEFAULT_SCRYPT_PARAMS (OWASP: N = 2^17, r = 8, p = 1)
   */
  readonly passwordParams?: ScryptParams;
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

/** 30 days (SPEC §4). */
export const DEFAULT_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** Checks `openStore` options once, at construction (STYLE.md practice 4). */
export function resolveStoreOptions(options: StoreOptions): KyselyStoreConfig {
  const {
    now = Date.now,
    tokenTtlMs = DEFAULT_TOKEN_TTL_MS,
    passwordParams = DEFAULT_SCRYPT_PARAMS,
  } = options;
  if (typeof now !== 'function') throw new TypeError('options.now must be a function');
  if (options.onQuery !== undefined && typeof options.onQuery !== 'function') {
    throw new TypeError('options.onQuery must be a function');
  }
  if (tokenTtlMs !== null && !(Number.isSafeInteger(tokenTtlMs) && tokenTtlMs > 0)) {
    throw new RangeError(
      'options.tokenTtlMs must be a positive integer number of milliseconds, or null',
    );
  }
  if (!isValidScryptParams(passwordParams)) {
    throw new RangeError(
      'options.passwordParams must have N a power of two in [2, 2^20], r in [1, 32] and p in [1, 16]',
    );
  }
  return { now, tokenTtlMs, passwordParams };
}
