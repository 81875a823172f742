// Database and store variants for suites that run on SQLite and on PostgreSQL alike.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { createPostgresSchema, serviceSuiteOptions, serviceUrl } from './services.js';

/** A fresh database for one test: its URL, raw SQL access for assertions, and teardown. */
export interface TestDatabase {
  readonly url: string;
  rows(query: string): Promise<Record<string, unknown>[]>;
  teardown(): Promise<void>;
}

export interface DatabaseVariant {
  readonly name: 'sqlite' | 'postgres';
  /** `describe` options: skipped locally when the service is down, never under CI=true. */
  readonly options: { skip: string | false };
  create(): Promise<TestDatabase>;
  /** A URL of the same kind whose database cannot be reached. */
  readonly unreachableUrl: string;
}

export const databaseVariants: readonly DatabaseVariant[] = [
  {
    name: 'sqlite',
    options: { skip: false },
    async create() {
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-test-'));
      const path = join(dir, 'test.db');
      return {
        url: `sqlite:${path}`,
        async rows(query) {
          const db = new Sqlite(path, { readonly: true });
          try {
            return db.prepare(query).all() as Record<string, unknown>[];
          } finally {
            db.close();
          }
        },
        teardown: () => rm(dir, { recursive: true, force: true }),
      };
    },
    unreachableUrl: `sqlite:${join(tmpdir(), 'portcullis-no-such-dir', 'sub', 'x.db')}`,
  },
  {
    name: 'postgres',
    options: await serviceSuiteOptions('postgres'),
    async create() {
      const schema = await createPostgresSchema(await serviceUrl('postgres'));
      return {
        url: schema.url,
        async rows(query) {
          const client = new pg.Client({ connectionString: schema.url });
          await client.connect();
          try {
            return (await client.query<Record<string, unknown>>(query)).rows;
          } finally {
            await client.end();
          }
        },
        teardown: () => schema.drop(),
      };
    },
    unreachableUrl: 'postgres://postgres@127.0.0.1:1/test',
  },
];

export interface OpenedStore {
  readonly store: Store;
  readonly url: string;
  cleanup(): Promise<void>;
}

export interface StoreVariant {
  readonly name: 'sqlite' | 'postgres';
  readonly options: { skip: string | false };
  /** A migrated store on a fresh database. */
  open(storeOptions?: { now?: () => number }): Promise<OpenedStore>;
}

export const storeVariants: readonly StoreVariant[] = databaseVariants.map((variant) => ({
  name: variant.name,
  options: variant.options,
  async open(storeOptions = {}) {
    const database = await variant.create();
    const store = openStore(database.url, storeOptions);
    await store.migrate();
    return {
      store,
      url: database.url,
      async cleanup() {
        await store.close();
        await database.teardown();
      },
    };
  },
}));
