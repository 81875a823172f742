/**
 * The store's migrations, provided in code so they ship inside the bundle and need no
 * file-system scan. Names sort in the order they apply; never rename or edit one that has
 * shipped, add a new one.
 *
 * @internal
 * @module
 */
import type { Migration, MigrationProvider } from 'kysely';
import type { DialectKind } from '../schema.js';
import { initial } from './0001-initial.js';

/** Migration provider for Kysely's `Migrator`. */
export function migrationProvider(kind: DialectKind): MigrationProvider {
  return {
    getMigrations(): Promise<Record<string, Migration>> {
      return Promise.resolve({ '0001-initial': initial(kind) });
    },
  };
}

/** Migration bookkeeping tables, prefixed so they never meet an application's own Kysely migrations. */
export const MIGRATION_TABLE = 'portcullis_migration';
export const MIGRATION_LOCK_TABLE = 'portcullis_migration_lock';
