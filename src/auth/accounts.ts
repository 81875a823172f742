/**
 * Accounts: the policy over the store's rows (SPEC §4). Passwords are hashed, tokens and
 * tickets generated and checked here; the store only keeps what it is given (digests,
 * hashes, rows).
 *
 * @module
 */
import { AuthenticationError } from '../errors.js';
import type { Id, StoredUser, Store, TokenInfo } from '../store/store.js';
import {
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  isValidScryptParams,
  verifyPasswordOrDummy,
  type ScryptParams,
} from './passwords.js';
import { generateTicket, parseTicket, TICKET_TTL_MS } from './tickets.js';
import { constantTimeEqual, digestToken, generateToken, parseToken } from './tokens.js';
import type { User } from './user.js';

/** 30 days (SPEC §4). */
export const DEFAULT_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** Input of {@link Accounts.createUser}. */
export interface CreateUserInput {
  /** 1 to 150 letters, digits and `@.+-_`, as Django allows. Unique, case-sensitive. */
  readonly username: string;
  /** Omit to create a user that cannot log in with a password (tokens only). */
  readonly password?: string;
  /** @default false */
  readonly isStaff?: boolean;
}

/** Options of {@link Accounts.createToken}. */
export interface CreateTokenOptions {
  /** A label for the owner (`"laptop"`, `"ci"`). @default '' */
  readonly name?: string;
  /**
   * Lifetime in milliseconds; `null` for a token that never expires.
   * @default the accounts' `tokenTtlMs` (30 days unless configured)
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

/** The part of a {@link Store} that {@link Accounts} uses; a `Store` from `openStore` has it. */
export type AccountStore = Pick<
  Store,
  | 'insertUser'
  | 'findLogin'
  | 'setPasswordHash'
  | 'insertToken'
  | 'findTokenByDigest'
  | 'touchToken'
  | 'insertTicket'
  | 'consumeTicketDigest'
  | 'getTokens'
>;

/** The store rows token verification reads. */
export type TokenRows = Pick<Store, 'findTokenByDigest' | 'touchToken'>;
/** The store rows ticket redemption reads. */
export type TicketRows = Pick<Store, 'consumeTicketDigest' | 'getTokens'>;

/** Options of {@link Accounts}. */
export interface AccountsOptions {
  /**
   * Default token lifetime in milliseconds; `null` for tokens that never expire
   * (`TOKEN_TTL`, SPEC §8). A token's own `ttlMs` overrides it.
   * @default 2_592_000_000 (30 days)
   */
  readonly tokenTtlMs?: number | null;
  /**
   * scrypt cost for new password hashes (existing hashes keep theirs), and for the dummy
   * hash an unknown username costs, so both take as long.
   * @default DEFAULT_SCRYPT_PARAMS (OWASP: N = 2^17, r = 8, p = 1)
   */
  readonly passwordParams?: ScryptParams;
  /** The clock, in milliseconds since the epoch. @default Date.now */
  readonly now?: () => number;
}

const invalid = (): AuthenticationError => new AuthenticationError('ERR_INVALID_CREDENTIALS');
const expired = (): AuthenticationError =>
  new AuthenticationError('ERR_TOKEN_EXPIRED', 'token expired');
const revoked = (): AuthenticationError =>
  new AuthenticationError('ERR_TOKEN_REVOKED', 'token revoked');

const isPositiveInteger = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) > 0;

/** A user as credentials carry it: no store-only fields. */
function publicUser({ source, id, username, isStaff }: StoredUser): User {
  return { source, id, username, isStaff, isAnonymous: false };
}

/** Throws unless `record` is a live token of an active user at `now`. */
function checkLive(record: TokenInfo & { user: StoredUser }, now: number): void {
  if (record.revokedAt !== null) throw revoked();
  if (record.expiresAt !== null && record.expiresAt.getTime() <= now) throw expired();
  if (!record.user.isActive) throw invalid();
}

/**
 * Verifies a Portcullis token against the store's rows and records its use.
 *
 * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` (malformed, unknown, inactive
 *   user), `ERR_TOKEN_EXPIRED` or `ERR_TOKEN_REVOKED`.
 * @throws {ServiceUnavailableError} when the database is down.
 */
export async function verifyStoredToken(
  store: TokenRows,
  token: string,
  now: () => number = Date.now,
): Promise<VerifiedToken> {
  // The checksum rejects a typo without a query.
  if (parseToken(token) === undefined) throw invalid();
  const digest = digestToken(token);
  const record = await store.findTokenByDigest(digest);
  // The index lookup already matched; the constant-time compare is defence in depth
  // against a collation or padding surprise in either database.
  if (record === undefined || !constantTimeEqual(record.digest, digest)) throw invalid();
  checkLive(record, now());
  await store.touchToken(record.id, record.lastUsedAt);
  return { user: publicUser(record.user), tokenId: record.id, expiresAt: record.expiresAt };
}

/**
 * Redeems a single-use ticket: of any number of concurrent redemptions exactly one
 * succeeds, and only while the ticket and the token that asked for it are live.
 *
 * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` (malformed, unknown, already
 *   used, inactive user), `ERR_TOKEN_EXPIRED` (the ticket or its token expired) or
 *   `ERR_TOKEN_REVOKED` (its token was revoked).
 * @throws {ServiceUnavailableError} when the database is down.
 */
export async function redeemStoredTicket(
  store: TicketRows,
  ticket: string,
  now: () => number = Date.now,
): Promise<RedeemedTicket> {
  if (parseTicket(ticket) === undefined) throw invalid();
  const consumed = await store.consumeTicketDigest(digestToken(ticket));
  if (consumed.status === 'expired') throw expired();
  if (consumed.status !== 'consumed') throw invalid();
  const [record] = await store.getTokens([consumed.tokenId]);
  if (record === undefined || record.userId !== consumed.userId) throw invalid();
  checkLive(record, now());
  return { user: publicUser(record.user), tokenId: record.id, expiresAt: record.expiresAt };
}

/**
 * Of these token ids, the ones that no longer authenticate for a reason other than
 * expiry (revoked, deleted, user deactivated), read in batched queries. Expiry is left
 * to the sessions' own timers, which close with 4401 `token expired`.
 */
export async function withdrawnTokens(
  store: Pick<Store, 'getTokens'>,
  ids: Iterable<string>,
): Promise<Set<string>> {
  const wanted = new Set(ids);
  const records = await store.getTokens([...wanted]);
  for (const record of records) {
    if (record.revokedAt === null && record.user.isActive) wanted.delete(record.id);
  }
  return wanted;
}

/**
 * Users, passwords, tokens and tickets over a {@link Store}: what to generate, hash and
 * check lives here, and the store keeps the digests and rows.
 *
 * @example
 * ```ts
 * const store = openStore('sqlite:./portcullis.db');
 * await store.migrate();
 * const accounts = new Accounts(store, { tokenTtlMs: 7 * 24 * 3600_000 });
 * const alice = await accounts.createUser({ username: 'alice', password: 's3cret!' });
 * const { token } = await accounts.createToken(alice.id, { name: 'laptop' });
 * const { user } = await accounts.verifyToken(token); // user.username === 'alice'
 * ```
 * @throws {TypeError | RangeError} at construction for invalid options.
 */
export class Accounts {
  /** The rows these accounts are kept in. */
  readonly store: AccountStore;
  readonly #tokenTtlMs: number | null;
  readonly #passwordParams: ScryptParams;
  readonly #now: () => number;

  constructor(store: AccountStore, options: AccountsOptions = {}) {
    const {
      tokenTtlMs = DEFAULT_TOKEN_TTL_MS,
      passwordParams = DEFAULT_SCRYPT_PARAMS,
      now = Date.now,
    } = options;
    if (typeof store?.insertToken !== 'function' || typeof store.findLogin !== 'function') {
      throw new TypeError('Accounts: store must be a Store (openStore gives one)');
    }
    if (tokenTtlMs !== null && !isPositiveInteger(tokenTtlMs)) {
      throw new RangeError(
        'Accounts: options.tokenTtlMs must be a positive integer number of milliseconds, or null',
      );
    }
    if (!isValidScryptParams(passwordParams)) {
      throw new RangeError(
        'Accounts: options.passwordParams must have N a power of two in [2, 2^20], r in [1, 32] and p in [1, 16]',
      );
    }
    if (typeof now !== 'function') throw new TypeError('Accounts: options.now must be a function');
    this.store = store;
    this.#tokenTtlMs = tokenTtlMs;
    this.#passwordParams = passwordParams;
    this.#now = now;
  }

  /**
   * Creates a user, hashing the password with scrypt.
   * @throws {UsernameTakenError} when the username exists.
   * @throws {RangeError} when the username is empty, too long or has other characters.
   */
  async createUser({ username, password, isStaff = false }: CreateUserInput): Promise<StoredUser> {
    const passwordHash =
      password === undefined ? null : await hashPassword(password, this.#passwordParams);
    return this.store.insertUser({ username, passwordHash, isStaff });
  }

  /**
   * Sets (or, with `null`, removes) a user's password.
   * @returns false when there is no such user.
   */
  async setPassword(userId: Id, password: string | null): Promise<boolean> {
    const passwordHash =
      password === null ? null : await hashPassword(password, this.#passwordParams);
    return this.store.setPasswordHash(userId, passwordHash);
  }

  /**
   * Checks a username and password. Takes the same time whether or not the user exists.
   * @returns the user, or `null` for an unknown user, a wrong password, a user without a
   *   password or an inactive user (indistinguishable on purpose).
   */
  async authenticatePassword(username: string, password: string): Promise<User | null> {
    const login = await this.store.findLogin(username);
    // Always run scrypt, so unknown users and users without a password take as long.
    const ok = await verifyPasswordOrDummy(password, login?.passwordHash, this.#passwordParams);
    if (!ok || login === undefined || !login.user.isActive) return null;
    return publicUser(login.user);
  }

  /**
   * Creates a token for a user. Only its SHA-256 digest is stored.
   * @throws {RangeError} when `ttlMs` is not a positive integer or `null`, the name is
   *   too long, or the user does not exist.
   */
  async createToken(userId: Id, options: CreateTokenOptions = {}): Promise<CreatedToken> {
    const { name = '', ttlMs = this.#tokenTtlMs } = options;
    if (ttlMs !== null && !isPositiveInteger(ttlMs)) {
      throw new RangeError('ttlMs must be a positive integer number of milliseconds, or null');
    }
    const token = generateToken();
    const expiresAt = ttlMs === null ? null : new Date(this.#now() + ttlMs);
    const row = await this.store.insertToken({
      userId,
      digest: digestToken(token),
      name,
      expiresAt,
    });
    return { token, id: row.id, expiresAt };
  }

  /**
   * Verifies a token and marks it used (at most one write per token per minute).
   * @throws {AuthenticationError} `ERR_INVALID_CREDENTIALS` (malformed, unknown, inactive
   *   user), `ERR_TOKEN_EXPIRED` or `ERR_TOKEN_REVOKED`.
   */
  verifyToken(token: string): Promise<VerifiedToken> {
    return verifyStoredToken(this.store, token, this.#now);
  }

  /** Issues a single-use ticket for a user and the token that asked for it; it lives 30 s. */
  async createTicket(userId: Id, tokenId: Id): Promise<CreatedTicket> {
    const ticket = generateTicket();
    await this.store.insertTicket({
      digest: digestToken(ticket),
      userId,
      tokenId,
      expiresAt: new Date(this.#now() + TICKET_TTL_MS),
    });
    return { ticket, expiresIn: TICKET_TTL_MS / 1000 };
  }

  /**
   * Redeems a ticket; see {@link redeemStoredTicket}.
   * @throws {AuthenticationError} for a malformed, unknown, used or expired ticket, or
   *   one whose token was revoked or expired.
   */
  consumeTicket(ticket: string): Promise<RedeemedTicket> {
    return redeemStoredTicket(this.store, ticket, this.#now);
  }
}
