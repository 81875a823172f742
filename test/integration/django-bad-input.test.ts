// `portcullis serve` in Django mode pointed at a database it cannot serve: each is one
// `portcullis: ...` line naming DJANGO_DATABASE_URL and exit status 1, never a crash.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import Sqlite from 'better-sqlite3';
import { main } from '../../src/gateway/cli.js';
import { serviceSuiteOptions } from '../helpers/services.js';

let dir: string;
const postgres = await serviceSuiteOptions('postgres');

async function serve(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const code = await main(['serve', '--port', '0'], {
    stdout: { write: () => true },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    stdin: Readable.from([]),
    env: {
      DATABASE_URL: `sqlite:${join(dir, 'portcullis.db')}`,
      LOG_LEVEL: 'silent',
      DJANGO_SECRET_KEY: 'django-insecure-0123456789abcdefghijklmnopqrstuvwxyz!@#$',
      ...env,
    },
    // Never reached: each case fails before listening.
    shutdown: AbortSignal.abort(),
  });
  return { code, stderr };
}

function failsWith(result: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^portcullis: [^\n]+\n$/);
  assert.match(result.stderr, pattern);
}

/** A SQLite file with the given DDL. */
function database(name: string, ddl: string[]): string {
  const path = join(dir, name);
  const db = new Sqlite(path);
  for (const statement of ddl) db.exec(statement);
  db.close();
  return `sqlite:${path}`;
}

const USER_TABLE = `CREATE TABLE auth_user (id integer PRIMARY KEY, password varchar(128) NOT NULL,
  username varchar(150) NOT NULL UNIQUE, is_staff bool NOT NULL, is_active bool NOT NULL)`;

describe('Django mode refuses a database it cannot serve', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-django-bad-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('an unreachable SQLite file', async () => {
    failsWith(
      await serve({ DJANGO_DATABASE_URL: `sqlite:${join(dir, 'missing', 'db.sqlite3')}` }),
      /DJANGO_DATABASE_URL: cannot open the Django database sqlite:.*missing.* \(.*directory does not exist\)/,
    );
    failsWith(
      await serve({ DJANGO_DATABASE_URL: `sqlite:${join(dir, 'no-such-file.sqlite3')}` }),
      /cannot open the Django database sqlite:.*no-such-file\.sqlite3 \(SQLITE_CANTOPEN\)/,
    );
  });

  test('an unreachable PostgreSQL server', postgres, async () => {
    const result = await serve({
      DJANGO_DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:1/app',
    });
    failsWith(
      result,
      /DJANGO_DATABASE_URL: cannot reach the Django database postgres:\/\/127\.0\.0\.1:1\/app \(ECONNREFUSED\)/,
    );
    assert.ok(!result.stderr.includes('s3cret'), 'never the password');
  });

  test('a database without Django’s tables', async () => {
    const url = database('empty.sqlite3', ['CREATE TABLE unrelated (id integer)']);
    failsWith(
      await serve({ DJANGO_DATABASE_URL: url }),
      /has no auth_user table: point it at the Django app's database after manage\.py migrate/,
    );
    failsWith(
      await serve({ DJANGO_DATABASE_URL: url, DJANGO_USER_TABLE: 'accounts_user' }),
      /has no accounts_user table/,
    );
  });

  test('another schema than Django 1.8+ writes', async () => {
    const url = database('old.sqlite3', [
      'CREATE TABLE auth_user (id integer PRIMARY KEY, password varchar(128), username varchar(30), is_staff bool)',
    ]);
    failsWith(await serve({ DJANGO_DATABASE_URL: url }), /table auth_user has no column is_active/);
    const tokens = database('tokens.sqlite3', [
      USER_TABLE,
      'CREATE TABLE authtoken_token (digest varchar(128) PRIMARY KEY, user_id integer)',
    ]);
    failsWith(
      await serve({ DJANGO_DATABASE_URL: tokens }),
      /table authtoken_token has no column key/,
    );
  });

  test('a named room table that is not MultiChat’s shape', async () => {
    const url = database('rooms.sqlite3', [
      USER_TABLE,
      'CREATE TABLE chat_room (id integer PRIMARY KEY, name varchar(255))',
    ]);
    failsWith(
      await serve({ DJANGO_DATABASE_URL: url, DJANGO_ROOM_TABLE: 'chat_room' }),
      /DJANGO_ROOM_TABLE: table chat_room has no column title/,
    );
    failsWith(
      await serve({ DJANGO_DATABASE_URL: url, DJANGO_ROOM_TABLE: 'chat_rooms' }),
      /DJANGO_ROOM_TABLE: the Django database has no table chat_rooms/,
    );
  });

  test('nothing to authenticate with', async () => {
    const url = database('users-only.sqlite3', [USER_TABLE]);
    let stderr = '';
    const code = await main(['serve', '--port', '0'], {
      stdout: { write: () => true },
      stderr: { write: (chunk: string) => (stderr += chunk) },
      stdin: Readable.from([]),
      env: {
        DATABASE_URL: `sqlite:${join(dir, 'portcullis.db')}`,
        LOG_LEVEL: 'silent',
        DJANGO_DATABASE_URL: url,
      },
      shutdown: AbortSignal.abort(),
    });
    failsWith(
      { code, stderr },
      /nothing to authenticate with: no authtoken_token table, and no DJANGO_SECRET_KEY/,
    );
  });
});
