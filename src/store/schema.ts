/**
 * Table types for Kysely. Both databases store the same values: integer ids, times as
 * integer milliseconds since the epoch (`bigint` on PostgreSQL, read back as numbers),
 * and flags as 0/1 integers because SQLite has no boolean and better-sqlite3 binds none.
 *
 * @internal
 * @module
 */
import type { Generated } from 'kysely';

/** 0 or 1. */
export type Flag = 0 | 1;

export interface UsersTable {
  id: Generated<number>;
  username: string;
  password_hash: string | null;
  is_staff: Flag;
  is_active: Flag;
  created_at: number;
}

export interface TokensTable {
  id: Generated<number>;
  user_id: number;
  /** SHA-256 hex of the token; the token itself is never stored. */
  digest: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface TicketsTable {
  digest: string;
  user_id: number;
  token_id: number;
  expires_at: number;
  consumed: Flag;
}

export interface RoomsTable {
  id: Generated<number>;
  title: string;
  staff_only: Flag;
  created_at: number;
}

export interface Database {
  users: UsersTable;
  tokens: TokensTable;
  tickets: TicketsTable;
  rooms: RoomsTable;
}

/** Which SQL dialect a store talks to; migrations differ only in column types. */
export type DialectKind = 'sqlite' | 'postgres';
