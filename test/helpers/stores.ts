// Store variants for suites that run on SQLite and on PostgreSQL alike.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { createPostgresSchema, serviceSuiteOptions, serviceUrl } from './services.js';

export interface OpenedStore {
  readonly store: Store;
  readonly url: string;
  cleanup(): Promise<void>;
}

export interface StoreVariant {
  readonly name: 'sqlite' | 'postgres';
  /** `describe` options: skipped locally when the service is down, never under CI=true. */
  readonly options: Promise<{ skip: string | false }>;
  open(storeOptions?: { now?: () => number }): Promise<OpenedStore>;
}

export const storeVariants: readonly StoreVariant[] = [
  {
    name: 'sqlite',
    options: Promise.resolve({ skip: false }),
    async open(storeOptions = {}) {
      const directory = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
      const url = `sqlite:${join(directory, 'test.db')}`;
      const store = openStore(url, storeOptions);
      await store.migrate();
      return {
        store,
        url,
        async cleanup() {
          await store.close();
          rmSync(directory, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    options: serviceSuiteOptions('postgres'),
    async open(storeOptions = {}) {
      const schema = await createPostgresSchema(await serviceUrl('postgres'));
      const store = openStore(schema.url, storeOptions);
      await store.migrate();
      return {
        store,
        url: schema.url,
        async cleanup() {
          await store.close();
          await schema.drop();
        },
      };
    },
  },
];
