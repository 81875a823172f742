/**
 * The store contract: users, tokens, tickets and MultiChat rooms, on SQLite or
 * PostgreSQL behind one interface (SPEC §4, §8). Open one with `openStore`.
 *
 * Ids are decimal strings (`User.id` is one); methods that take an id also accept a
 * number. Every method rejects with `ServiceUnavailableError('database')` when the
 * database cannot be reached, so callers fail closed.
 *
 * @module
 */
import type { User } from '../auth/user.js';

/** An id as accepted by the store: a decimal string such as `User.id`, or a number. */
export type Id = string | number;

/** A user row. */
export interface StoredUser extends User {
  /** Inactive users cannot log in and their tokens stop working. */
  readonly isActive: boolean;
  readonly createdAt: Date;
}

/** Input of {@link Store.insertUser}: a row as `auth/` made it. */
export interface NewUserRow {
  /** 1 to 150 letters, digits and `@.+-_`, as Django allows. Unique, case-sensitive. */
  readonly username: string;
  /** A hash from `hashPassword`, or `null` for a user that signs in with tokens only. */
  readonly passwordHash: string | null;
  /** @default false */
  readonly isStaff?: boolean;
}

/** A user with the password hash a login checks ({@link Store.findLogin}). */
export interface LoginRecord {
  readonly user: StoredUser;
  readonly passwordHash: string | null;
}

/** Input of {@link Store.insertToken}: the digest of a token `auth/` generated. */
export interface NewTokenRow {
  readonly userId: Id;
  /** SHA-256 hex of the token (`digestToken`); the token itself is never stored. */
  readonly digest: string;
  /** A label for the owner, at most 200 characters. */
  readonly name: string;
  readonly expiresAt: Date | null;
}

/** A token as listed for its owner: never the token itself. */
export interface TokenInfo {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly createdAt: Date;
  /** Updated at most once a minute per token. */
  readonly lastUsedAt: Date | null;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

/** A token row with its digest and its user, for verification in `auth/`. */
export interface TokenRecord extends TokenInfo {
  readonly digest: string;
  readonly user: StoredUser;
}

/** Input of {@link Store.insertTicket}: the digest of a ticket `auth/` generated. */
export interface NewTicketRow {
  readonly digest: string;
  readonly userId: Id;
  /** The token that asked for the ticket. */
  readonly tokenId: Id;
  readonly expiresAt: Date;
}

/** What {@link Store.consumeTicketDigest} found. */
export type TicketConsumption =
  | { readonly status: 'consumed'; readonly userId: string; readonly tokenId: string }
  /** Unused, but past its expiry. */
  | { readonly status: 'expired' }
  /** Unknown or already consumed (a replay). */
  | { readonly status: 'unknown' };

/** A MultiChat room (SPEC §7). */
export interface Room {
  readonly id: string;
  readonly title: string;
  readonly staffOnly: boolean;
  readonly createdAt: Date;
}

/** Input of {@link Store.createRoom}. */
export interface CreateRoomInput {
  /** 1 to 200 characters. */
  readonly title: string;
  /** @default false */
  readonly staffOnly?: boolean;
}

/** Tokens that stopped being valid, reported to {@link Store.onRevoke} listeners. */
export interface RevocationEvent {
  readonly userId: string;
  readonly tokenIds: readonly string[];
}

/**
 * Rows of users, tokens, tickets and rooms. See `openStore`. The store keeps what it is
 * given: creating secrets and deciding whether one is valid is `auth/`'s (`Accounts`).
 *
 * @example
 * ```ts
 * const store = openStore('sqlite:./portcullis.db');
 * await store.migrate();
 * const accounts = new Accounts(store);
 * const alice = await accounts.createUser({ username: 'alice', password: 's3cret!' });
 * const { token } = await accounts.createToken(alice.id, { name: 'laptop' });
 * const { user } = await accounts.verifyToken(token); // user.username === 'alice'
 * ```
 */
export interface Store {
  /** Which database this store talks to. */
  readonly kind: 'sqlite' | 'postgres';

  /**
   * Creates or upgrades the schema. On PostgreSQL concurrent runs wait on an advisory
   * lock; on SQLite a run that collides with another's finds its schema (`serve` migrates
   * SQLite on start, so two gateways may start on one new file).
   * @returns the names of the migrations applied now (empty when already up to date).
   */
  migrate(): Promise<readonly string[]>;
  /**
   * Resolves when every migration of this version is applied; changes nothing.
   * @throws {SchemaOutdatedError} when the schema is missing or older than the code.
   * @throws {ServiceUnavailableError} when the database cannot be reached.
   */
  checkSchema(): Promise<void>;
  /** Resolves when the database answers a trivial query (readiness, `GET /readyz`). */
  ping(): Promise<void>;
  /** Closes every connection. Further calls reject with `ServiceUnavailableError`. Idempotent. */
  close(): Promise<void>;

  /**
   * Inserts a user row. The password hash is made by `auth/` (`Accounts.createUser`).
   * @throws {UsernameTakenError} when the username exists.
   * @throws {RangeError} when the username is empty, too long or has other characters.
   */
  insertUser(row: NewUserRow): Promise<StoredUser>;
  getUserById(id: Id): Promise<StoredUser | undefined>;
  getUserByUsername(username: string): Promise<StoredUser | undefined>;
  /** The user and their password hash, for a login; `undefined` for an unknown username. */
  findLogin(username: string): Promise<LoginRecord | undefined>;
  /**
   * Replaces a user's password hash (`null`: no password login).
   * @returns false when there is no such user.
   */
  setPasswordHash(id: Id, passwordHash: string | null): Promise<boolean>;
  /**
   * Activates or deactivates a user. Deactivating reports the user's live tokens to
   * {@link Store.onRevoke} listeners, since none of them verifies any more.
   * @returns false when there is no such user.
   */
  setUserActive(id: Id, active: boolean): Promise<boolean>;

  /**
   * Inserts a token row (its digest only).
   * @throws {RangeError} when the user does not exist or the name is longer than 200.
   */
  insertToken(row: NewTokenRow): Promise<TokenInfo>;
  /** The token whose digest this is, with its user, revoked or expired ones included. */
  findTokenByDigest(digest: string): Promise<TokenRecord | undefined>;
  /** The tokens of these ids that exist, with their users, in one query. */
  getTokens(ids: readonly Id[]): Promise<readonly TokenRecord[]>;
  /**
   * Records a use of a token (`last_used_at`), writing at most once a minute per token.
   * @param lastUsedAt what the caller read (`TokenRecord.lastUsedAt`), to skip a write.
   */
  touchToken(id: Id, lastUsedAt?: Date | null): Promise<void>;
  /**
   * Revokes one token.
   * @returns true when a live token was revoked now, false when unknown or already revoked.
   */
  revokeToken(id: Id): Promise<boolean>;
  /** Revokes every live token of a user. @returns the ids revoked now. */
  revokeUserTokens(userId: Id): Promise<readonly string[]>;
  /** Every token of a user, revoked and expired ones included, oldest first. */
  listTokens(userId: Id): Promise<readonly TokenInfo[]>;
  /**
   * Registers a listener called after tokens are revoked or their user deactivated in
   * this process (authenticator caches evict on it). Other processes learn of revocations
   * through the channel layer, not through this.
   * @returns a function that removes the listener.
   */
  onRevoke(listener: (event: RevocationEvent) => void): () => void;

  /**
   * Inserts a ticket row (its digest only).
   * @throws {RangeError} when the user or token does not exist.
   */
  insertTicket(row: NewTicketRow): Promise<void>;
  /**
   * Marks a ticket consumed. One conditional UPDATE, so of any number of concurrent
   * consumptions of one digest exactly one reports `consumed`.
   */
  consumeTicketDigest(digest: string): Promise<TicketConsumption>;

  /**
   * Creates a MultiChat room.
   * @returns the new room's id.
   * @throws {RangeError} when the title is empty or longer than 200 characters.
   */
  createRoom(input: CreateRoomInput): Promise<string>;
  /** Every room, by id. */
  listRooms(): Promise<readonly Room[]>;
  getRoom(id: Id): Promise<Room | undefined>;
}
