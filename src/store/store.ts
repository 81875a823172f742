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

/** Input of {@link Store.createUser}. */
export interface CreateUserInput {
  /** 1 to 150 letters, digits and `@.+-_`, as Django allows. Unique, case-sensitive. */
  readonly username: string;
  /** Omit to create a user that cannot log in with a password (tokens only). */
  readonly password?: string;
  /** @default false */
  readonly isStaff?: boolean;
}

/** Options of {@link Store.createToken}. */
export interface CreateTokenOptions {
  /** A label for the owner (`"laptop"`, `"ci"`). @default '' */
  readonly name?: string;
  /**
   * Lifetime in milliseconds; `null` for a token that never expires.
   * @default the store's `tokenTtlMs` (30 days unless configured)
   */
  readonly ttlMs?: number | null;
}

/** A token just created. `token` is shown once and never stored. */
export interface CreatedToken {
  /** The plaintext token, `pcu_…`. */
  readonly token: string;
  readonly id: string;
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

/** A verified token. */
export interface VerifiedToken {
  readonly user: User;
  readonly tokenId: string;
  readonly expiresAt: Date | null;
}

/** A ticket just issued (the body of `POST /api/auth/ticket`, SPEC §6). */
export interface CreatedTicket {
  /** The plaintext ticket, `pct_…`. */
  readonly ticket: string;
  /** Seconds until it can no longer be redeemed. */
  readonly expiresIn: number;
}

/** A redeemed ticket: the user and the token that asked for it. */
export interface RedeemedTicket {
  readonly user: User;
  /** The token the ticket was issued with; revoking it closes the ticket's sockets. */
  readonly tokenId: string;
  /** That token's expiry, which the ticket's connection inherits. */
  readonly expiresAt: Date | null;
}

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
 * Users, tokens, tickets and rooms. See `openStore`.
 *
 * @example
 * ```ts
 * const store = openStore('sqlite:./portcullis.db');
 * await store.migrate();
 * const alice = await store.createUser({ username: 'alice', password: 's3cret!' });
 * const { token } = await store.createToken(alice.id, { name: 'laptop' });
 * const { user } = await store.verifyToken(token); // user.username === 'alice'
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
   * Creates a user, hashing the password with scrypt.
   * @throws {UsernameTakenError} when the username exists.
   * @throws {RangeError} when the username is empty, too long or has other characters.
   */
  createUser(input: CreateUserInput): Promise<StoredUser>;
  getUserById(id: Id): Promise<StoredUser | undefined>;
  getUserByUsername(username: string): Promise<StoredUser | undefined>;
  /**
   * Activates or deactivates a user. Deactivating reports the user's live tokens to
   * {@link Store.onRevoke} listeners, since none of them verifies any more.
   * @returns false when there is no such user.
   */
  setUserActive(id: Id, active: boolean): Promise<boolean>;
  /**
   * Sets a user's password, hashing it with scrypt; the user's tokens stay valid.
   * @returns false when there is no such user.
   */
  setUserPassword(id: Id, password: string): Promise<boolean>;
  /**
   * Checks a username and password. Takes the same time whether or not the user exists.
   * @returns the user, or `null` for an unknown user, a wrong password, a user without a
   *   password or an inactive user (indistinguishable on purpose).
   */
  authenticatePassword(username: string, password: string): Promise<User | null>;

  /**
   * Creates a token for a user. Only its SHA-256 digest is stored.
   * @throws {RangeError} when `ttlMs` is not a positive integer or `null`.
   */
  createToken(userId: Id, options?: CreateTokenOptions): Promise<CreatedToken>;
  /**
   * Verifies a token and marks it used (at most one write per token per minute).
   * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` (malformed, unknown, inactive
   *   user), `ERR_TOKEN_EXPIRED` or `ERR_TOKEN_REVOKED`.
   */
  verifyToken(token: string): Promise<VerifiedToken>;
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

  /** Issues a single-use ticket for a user and the token that asked for it; it lives 30 s. */
  createTicket(userId: Id, tokenId: Id): Promise<CreatedTicket>;
  /**
   * Redeems a ticket. Consumption is one conditional UPDATE, so of any number of
   * concurrent redemptions exactly one succeeds.
   * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` (malformed, unknown, already
   *   used, inactive user), `ERR_TOKEN_EXPIRED` (the ticket or its token expired) or
   *   `ERR_TOKEN_REVOKED` (its token was revoked).
   */
  consumeTicket(ticket: string): Promise<RedeemedTicket>;

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
