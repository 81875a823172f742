/**
 * Initial schema: users, tokens, tickets, MultiChat rooms.
 *
 * @internal
 * @module
 */
import type { Kysely, Migration } from 'kysely';
import type { DialectKind } from '../schema.js';

export function initial(kind: DialectKind): Migration {
  // SQLite makes `INTEGER PRIMARY KEY` the rowid (the exact type name matters);
  // AUTOINCREMENT keeps ids of deleted rows from coming back, which matters for token ids
  // used as revocation keys. PostgreSQL gets 64-bit identity columns.
  const idType = kind === 'postgres' ? 'bigint' : 'integer';
  const timeType = kind === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', idType, (col) =>
          kind === 'postgres'
            ? col.primaryKey().generatedByDefaultAsIdentity()
            : col.primaryKey().autoIncrement(),
        )
        .addColumn('username', 'varchar(150)', (col) => col.notNull().unique())
        .addColumn('password_hash', 'text')
        .addColumn('is_staff', 'integer', (col) => col.notNull().defaultTo(0))
        .addColumn('is_active', 'integer', (col) => col.notNull().defaultTo(1))
        .addColumn('created_at', timeType, (col) => col.notNull())
        .execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', idType, (col) =>
          kind === 'postgres'
            ? col.primaryKey().generatedByDefaultAsIdentity()
            : col.primaryKey().autoIncrement(),
        )
        .addColumn('user_id', idType, (col) =>
          col.notNull().references('users.id').onDelete('cascade'),
        )
        .addColumn('digest', 'char(64)', (col) => col.notNull().unique())
        .addColumn('name', 'varchar(200)', (col) => col.notNull().defaultTo(''))
        .addColumn('created_at', timeType, (col) => col.notNull())
        .addColumn('last_used_at', timeType)
        .addColumn('expires_at', timeType)
        .addColumn('revoked_at', timeType)
        .execute();
      await db.schema.createIndex('tokens_user_id_idx').on('tokens').column('user_id').execute();

      await db.schema
        .createTable('tickets')
        .addColumn('digest', 'char(64)', (col) => col.primaryKey())
        .addColumn('user_id', idType, (col) =>
          col.notNull().references('users.id').onDelete('cascade'),
        )
        .addColumn('token_id', idType, (col) =>
          col.notNull().references('tokens.id').onDelete('cascade'),
        )
        .addColumn('expires_at', timeType, (col) => col.notNull())
        .addColumn('consumed', 'integer', (col) => col.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createIndex('tickets_expires_at_idx')
        .on('tickets')
        .column('expires_at')
        .execute();

      await db.schema
        .createTable('rooms')
        .addColumn('id', idType, (col) =>
          kind === 'postgres'
            ? col.primaryKey().generatedByDefaultAsIdentity()
            : col.primaryKey().autoIncrement(),
        )
        .addColumn('title', 'varchar(200)', (col) => col.notNull())
        .addColumn('staff_only', 'integer', (col) => col.notNull().defaultTo(0))
        .addColumn('created_at', timeType, (col) => col.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['rooms', 'tickets', 'tokens', 'users']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
