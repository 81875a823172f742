/**
 * One store suite, run over SQLite (a real temporary file) and PostgreSQL (a fresh schema
 * per test). Time comes from a fake clock; nothing sleeps.
 */
import { Accounts, type AccountsOptions } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import Sqlite from 'better-sqlite3';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { digestToken, generateToken } from '../../src/auth/tokens.js';
import { generateTicket } from '../../src/auth/tickets.js';
import { AuthenticationError, ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import {
  openStore,
  parseDatabaseUrl,
  SchemaOutdatedError,
  UsernameTakenError,
  type RevocationEvent,
  type Store,
  type StoreOptions,
} from '../../src/store/index.js';
import { withStatementCache } from '../../src/store/database.js';
import { createPostgresSchema, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';
import { databaseVariants } from '../helpers/stores.js';
import type { TestDatabase } from '../helpers/stores.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const FAST_SCRYPT = { N: 1024, r: 8, p: 1 };

const variants = databaseVariants;

/** Asserts that `promise` rejects with an AuthenticationError of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: AuthenticationError['code']) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AuthenticationError, `not an AuthenticationError: ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

for (const variant of variants) {
  describe(`store (${variant.name})`, variant.options, () => {
    let database: TestDatabase;
    let store: Store;
    let clock: number;
    let accounts: Accounts;
    const open = (options: StoreOptions = {}): Store =>
      openStore(database.url, { now: () => clock, ...options });
    const accountsOf = (rows: Store, options: AccountsOptions = {}): Accounts =>
      new Accounts(rows, { now: () => clock, passwordParams: FAST_SCRYPT, ...options });

    beforeEach(async () => {
      clock = Date.UTC(2030, 0, 1);
      database = await variant.create();
      store = open();
      accounts = accountsOf(store);
      await store.migrate();
    });

    afterEach(async () => {
      await store.close();
      await database.teardown();
    });

    describe('schema', () => {
      it('migrates once, then reports nothing to do', async () => {
        assert.deepEqual(await store.migrate(), []);
        const other = open();
        try {
          assert.deepEqual(await other.migrate(), []);
        } finally {
          await other.close();
        }
        assert.equal(store.kind, variant.name);
      });

      it('answers ping', async () => {
        await store.ping();
      });

      it('checks the schema without changing it: missing until migrated', async () => {
        // On PostgreSQL, the store of beforeEach left its migration table in another schema.
        const fresh = await variant.create();
        const unmigrated = openStore(fresh.url);
        const missing = (error: unknown): boolean => {
          assert.ok(error instanceof SchemaOutdatedError, String(error));
          assert.equal(error.code, 'ERR_SCHEMA_OUTDATED');
          assert.deepEqual(error.pending, ['0001-initial']);
          assert.equal(error.missing, true);
          return true;
        };
        try {
          await assert.rejects(unmigrated.checkSchema(), missing);
          await assert.rejects(unmigrated.checkSchema(), missing);
          assert.deepEqual(await unmigrated.migrate(), ['0001-initial']);
          await unmigrated.checkSchema();
        } finally {
          await unmigrated.close();
          await fresh.teardown();
        }
      });
    });

    describe('users', () => {
      it('creates and finds users', async () => {
        const alice = await accounts.createUser({
          username: 'alice',
          password: 'pw',
          isStaff: true,
        });
        const bob = await accounts.createUser({ username: 'bob' });
        assert.match(alice.id, /^[1-9][0-9]*$/);
        assert.notEqual(alice.id, bob.id);
        assert.deepEqual(alice, {
          source: 'portcullis',
          id: alice.id,
          username: 'alice',
          isStaff: true,
          isAnonymous: false,
          isActive: true,
          createdAt: new Date(clock),
        });
        assert.deepEqual(await store.getUserById(alice.id), alice);
        assert.deepEqual(await store.getUserById(Number(bob.id)), bob);
        assert.deepEqual(await store.getUserByUsername('bob'), bob);
        assert.equal(bob.isStaff, false);
        assert.equal(await store.getUserByUsername('carol'), undefined);
        assert.equal(await store.getUserByUsername('Alice'), undefined);
        for (const bad of ['999999', 'abc', '1.5', '-1', '0', '01', 0, 1.5]) {
          assert.equal(await store.getUserById(bad), undefined, String(bad));
        }
      });

      it('refuses a duplicate username with a coded error', async () => {
        await accounts.createUser({ username: 'alice' });
        await assert.rejects(accounts.createUser({ username: 'alice', password: 'x' }), (error) => {
          assert.ok(error instanceof UsernameTakenError);
          assert.equal(error.code, 'ERR_USERNAME_TAKEN');
          assert.equal(error.message, 'username "alice" is already taken');
          return true;
        });
      });

      it('refuses invalid usernames', async () => {
        for (const bad of ['', 'a b', 'x'.repeat(151), 'semi;colon', 'new\nline']) {
          await assert.rejects(accounts.createUser({ username: bad }), RangeError, bad);
        }
        assert.equal(
          (await accounts.createUser({ username: 'zoë.o+1@x_y-z' })).username,
          'zoë.o+1@x_y-z',
        );
      });

      it('authenticates passwords', async () => {
        const alice = await accounts.createUser({ username: 'alice', password: 'correct horse' });
        await accounts.createUser({ username: 'tokens-only' });
        assert.deepEqual(await accounts.authenticatePassword('alice', 'correct horse'), {
          source: 'portcullis',
          id: alice.id,
          username: 'alice',
          isStaff: false,
          isAnonymous: false,
        });
        assert.equal(await accounts.authenticatePassword('alice', 'wrong'), null);
        assert.equal(await accounts.authenticatePassword('nobody', 'correct horse'), null);
        assert.equal(await accounts.authenticatePassword('tokens-only', ''), null);
        const [row] = await database.rows(
          `select password_hash from users where username = 'alice'`,
        );
        assert.match(String(row?.['password_hash']), /^scrypt\$1024\$8\$1\$/);
      });

      it('refuses passwords and tokens of an inactive user', async () => {
        const alice = await accounts.createUser({ username: 'alice', password: 'pw' });
        const { token, id } = await accounts.createToken(alice.id);
        const events: RevocationEvent[] = [];
        store.onRevoke((event) => events.push(event));
        assert.equal(await store.setUserActive(alice.id, false), true);
        assert.deepEqual(events, [{ userId: alice.id, tokenIds: [id] }]);
        assert.equal((await store.getUserById(alice.id))?.isActive, false);
        assert.equal(await accounts.authenticatePassword('alice', 'pw'), null);
        await rejectsWith(accounts.verifyToken(token), 'ERR_INVALID_CREDENTIALS');
        assert.equal(await store.setUserActive(alice.id, true), true);
        assert.equal((await accounts.verifyToken(token)).user.id, alice.id);
        assert.equal(await store.setUserActive('424242', false), false);
      });
    });

    describe('tokens', () => {
      it('creates a token that verifies, storing only its digest', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const created = await accounts.createToken(alice.id, { name: 'laptop' });
        assert.match(created.token, /^pcu_[0-9A-Za-z]{38}$/);
        assert.deepEqual(created.expiresAt, new Date(clock + 30 * DAY));
        assert.deepEqual(await accounts.verifyToken(created.token), {
          user: {
            source: 'portcullis',
            id: alice.id,
            username: 'alice',
            isStaff: false,
            isAnonymous: false,
          },
          tokenId: created.id,
          expiresAt: created.expiresAt,
        });
        const rows = await database.rows('select * from tokens');
        assert.equal(rows.length, 1);
        assert.equal(rows[0]?.['digest'], digestToken(created.token));
        assert.ok(!JSON.stringify(rows).includes(created.token.slice(4, 36)));
        assert.deepEqual(await store.listTokens(alice.id), [
          {
            id: created.id,
            userId: alice.id,
            name: 'laptop',
            createdAt: new Date(clock),
            lastUsedAt: new Date(clock),
            expiresAt: created.expiresAt,
            revokedAt: null,
          },
        ]);
      });

      it('rejects malformed, mistyped and unknown tokens as invalid credentials', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const { token } = await accounts.createToken(alice.id);
        const typo = token.slice(0, 10) + (token[10] === 'a' ? 'b' : 'a') + token.slice(11);
        for (const bad of ['', 'pcu_', 'Token abc', typo, generateToken(), generateTicket()]) {
          await rejectsWith(accounts.verifyToken(bad), 'ERR_INVALID_CREDENTIALS');
        }
      });

      it('expires tokens on the injected clock', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const short = await accounts.createToken(alice.id, { ttlMs: 1_000 });
        const forever = await accounts.createToken(alice.id, { ttlMs: null });
        assert.equal(forever.expiresAt, null);
        clock += 999;
        await accounts.verifyToken(short.token);
        clock += 1;
        await rejectsWith(accounts.verifyToken(short.token), 'ERR_TOKEN_EXPIRED');
        clock += 10 * 365 * DAY;
        assert.equal((await accounts.verifyToken(forever.token)).expiresAt, null);
      });

      it('uses the configured default lifetime', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const hourly = accountsOf(store, { tokenTtlMs: 60 * MINUTE });
        const never = accountsOf(store, { tokenTtlMs: null });
        const a = await hourly.createToken(alice.id);
        assert.deepEqual(a.expiresAt, new Date(clock + 60 * MINUTE));
        assert.equal((await never.createToken(alice.id)).expiresAt, null);
        clock += 60 * MINUTE;
        await rejectsWith(accounts.verifyToken(a.token), 'ERR_TOKEN_EXPIRED');
      });

      it('refuses invalid lifetimes and unknown users', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        for (const ttlMs of [0, -1, 1.5, Number.NaN, Infinity]) {
          await assert.rejects(
            accounts.createToken(alice.id, { ttlMs }),
            RangeError,
            String(ttlMs),
          );
        }
        await assert.rejects(accounts.createToken('424242'), {
          name: 'RangeError',
          message: 'no user with id 424242',
        });
        await assert.rejects(accounts.createToken('nope'), RangeError);
        assert.throws(() => accountsOf(store, { tokenTtlMs: 0 }), RangeError);
      });

      it('revokes one token at once', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const a = await accounts.createToken(alice.id);
        const b = await accounts.createToken(alice.id);
        const events: RevocationEvent[] = [];
        const unsubscribe = store.onRevoke((event) => events.push(event));
        clock += MINUTE;
        assert.equal(await store.revokeToken(a.id), true);
        assert.equal(await store.revokeToken(a.id), false);
        assert.equal(await store.revokeToken('424242'), false);
        assert.equal(await store.revokeToken('junk'), false);
        await rejectsWith(accounts.verifyToken(a.token), 'ERR_TOKEN_REVOKED');
        await accounts.verifyToken(b.token);
        assert.deepEqual(events, [{ userId: alice.id, tokenIds: [a.id] }]);
        const listed = await store.listTokens(alice.id);
        assert.deepEqual(
          listed.map((t) => [t.id, t.revokedAt]),
          [
            [a.id, new Date(clock)],
            [b.id, null],
          ],
        );
        unsubscribe();
        await store.revokeToken(b.id);
        assert.equal(events.length, 1);
      });

      it('revokes every token of a user and no one else', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const bob = await accounts.createUser({ username: 'bob' });
        const a1 = await accounts.createToken(alice.id);
        const a2 = await accounts.createToken(alice.id);
        const a3 = await accounts.createToken(alice.id);
        const b1 = await accounts.createToken(bob.id);
        await store.revokeToken(a3.id);
        const events: RevocationEvent[] = [];
        store.onRevoke((event) => events.push(event));
        assert.deepEqual(await store.revokeUserTokens(alice.id), [a1.id, a2.id]);
        assert.deepEqual(events, [{ userId: alice.id, tokenIds: [a1.id, a2.id] }]);
        assert.deepEqual(await store.revokeUserTokens(alice.id), []);
        await rejectsWith(accounts.verifyToken(a1.token), 'ERR_TOKEN_REVOKED');
        await rejectsWith(accounts.verifyToken(a2.token), 'ERR_TOKEN_REVOKED');
        assert.equal((await accounts.verifyToken(b1.token)).user.username, 'bob');
      });

      it('writes last_used_at at most once a minute', async () => {
        let writes = 0;
        const counted = open({
          onQuery: ({ sql }) => {
            if (/^update "tokens" set "last_used_at"/.test(sql)) writes++;
          },
        });
        const alice = await accounts.createUser({ username: 'alice' });
        const { token } = await accounts.createToken(alice.id);
        const start = clock;
        const lastUsed = async (): Promise<Date | null | undefined> =>
          (await store.listTokens(alice.id))[0]?.lastUsedAt;
        try {
          assert.equal(await lastUsed(), null);
          await accountsOf(counted).verifyToken(token);
          assert.deepEqual(await lastUsed(), new Date(start));
          await Promise.all(
            Array.from({ length: 10 }, () => accountsOf(counted).verifyToken(token)),
          );
          clock += 30_000;
          await accountsOf(counted).verifyToken(token);
          clock += 29_999;
          await accountsOf(counted).verifyToken(token);
          assert.deepEqual(await lastUsed(), new Date(start));
          assert.equal(writes, 1);
          clock += 1;
          await accountsOf(counted).verifyToken(token);
          assert.deepEqual(await lastUsed(), new Date(start + MINUTE));
          assert.equal(writes, 2);
          // Another process (store) sees the recent write in the row and does not repeat it.
          clock += 1_000;
          await accounts.verifyToken(token);
          assert.deepEqual(await lastUsed(), new Date(start + MINUTE));
        } finally {
          await counted.close();
        }
      });

      it('writes last_used_at once for concurrent first uses', async () => {
        let writes = 0;
        const counted = open({
          onQuery: ({ sql }) => {
            if (/^update "tokens" set "last_used_at"/.test(sql)) writes++;
          },
        });
        try {
          const alice = await accountsOf(counted).createUser({ username: 'alice' });
          const { token } = await accountsOf(counted).createToken(alice.id);
          await Promise.all(
            Array.from({ length: 20 }, () => accountsOf(counted).verifyToken(token)),
          );
          assert.equal(writes, 1);
        } finally {
          await counted.close();
        }
      });
    });

    describe('tickets', () => {
      async function setup() {
        const alice = await accounts.createUser({ username: 'alice', isStaff: true });
        const token = await accounts.createToken(alice.id, { ttlMs: DAY });
        return { alice, token };
      }

      it('are redeemed once, for the user and token that asked', async () => {
        const { alice, token } = await setup();
        const { ticket, expiresIn } = await accounts.createTicket(alice.id, token.id);
        assert.match(ticket, /^pct_[0-9A-Za-z]{38}$/);
        assert.equal(expiresIn, 30);
        assert.deepEqual(await accounts.consumeTicket(ticket), {
          user: {
            source: 'portcullis',
            id: alice.id,
            username: 'alice',
            isStaff: true,
            isAnonymous: false,
          },
          tokenId: token.id,
          expiresAt: token.expiresAt,
        });
        await rejectsWith(accounts.consumeTicket(ticket), 'ERR_INVALID_CREDENTIALS');
        const rows = await database.rows('select digest from tickets');
        assert.deepEqual(rows, [{ digest: digestToken(ticket) }]);
      });

      it('admit exactly one of 50 parallel redemptions', async () => {
        const { alice, token } = await setup();
        const { ticket } = await accounts.createTicket(alice.id, token.id);
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, () => accounts.consumeTicket(ticket)),
        );
        const fulfilled = results.filter((r) => r.status === 'fulfilled');
        assert.equal(fulfilled.length, 1);
        for (const result of results) {
          if (result.status === 'rejected') {
            assert.ok(result.reason instanceof AuthenticationError);
            assert.equal(result.reason.code, 'ERR_INVALID_CREDENTIALS');
          }
        }
      });

      it('expire after 30 s', async () => {
        const { alice, token } = await setup();
        const early = await accounts.createTicket(alice.id, token.id);
        const late = await accounts.createTicket(alice.id, token.id);
        clock += 29_999;
        await accounts.consumeTicket(early.ticket);
        clock += 1;
        await rejectsWith(accounts.consumeTicket(late.ticket), 'ERR_TOKEN_EXPIRED');
        // Still expired, and not resurrected by the failed attempt.
        await rejectsWith(accounts.consumeTicket(late.ticket), 'ERR_TOKEN_EXPIRED');
      });

      it('die with the token that asked for them', async () => {
        const { alice, token } = await setup();
        const { ticket } = await accounts.createTicket(alice.id, token.id);
        await store.revokeToken(token.id);
        await rejectsWith(accounts.consumeTicket(ticket), 'ERR_TOKEN_REVOKED');
      });

      it('expire with the token that asked for them', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const token = await accounts.createToken(alice.id, { ttlMs: 10_000 });
        const { ticket } = await accounts.createTicket(alice.id, token.id);
        clock += 10_000;
        await rejectsWith(accounts.consumeTicket(ticket), 'ERR_TOKEN_EXPIRED');
      });

      it('reject malformed and unknown tickets', async () => {
        const { alice, token } = await setup();
        const { ticket } = await accounts.createTicket(alice.id, token.id);
        const typo = ticket.slice(0, 8) + (ticket[8] === 'a' ? 'b' : 'a') + ticket.slice(9);
        for (const bad of ['', 'pct_x', typo, generateTicket(), generateToken()]) {
          await rejectsWith(accounts.consumeTicket(bad), 'ERR_INVALID_CREDENTIALS');
        }
        await accounts.consumeTicket(ticket);
      });

      it('purge expired tickets as new ones are issued', async () => {
        const { alice, token } = await setup();
        await accounts.createTicket(alice.id, token.id);
        clock += 2 * MINUTE;
        await accounts.createTicket(alice.id, token.id);
        assert.equal((await database.rows('select digest from tickets')).length, 1);
      });
    });

    describe('rooms', () => {
      it('creates, lists and gets rooms', async () => {
        const lobby = await store.createRoom({ title: 'Lobby' });
        const staff = await store.createRoom({ title: 'Staff <b>only</b>', staffOnly: true });
        assert.match(lobby, /^[1-9][0-9]*$/);
        assert.deepEqual(await store.listRooms(), [
          { id: lobby, title: 'Lobby', staffOnly: false, createdAt: new Date(clock) },
          { id: staff, title: 'Staff <b>only</b>', staffOnly: true, createdAt: new Date(clock) },
        ]);
        assert.deepEqual(await store.getRoom(Number(staff)), (await store.listRooms())[1]);
        assert.equal((await store.getRoom(lobby))?.title, 'Lobby');
        assert.equal(await store.getRoom('424242'), undefined);
        assert.equal(await store.getRoom('lobby'), undefined);
      });

      it('refuses blank titles', async () => {
        await assert.rejects(store.createRoom({ title: '  ' }), RangeError);
        await assert.rejects(store.createRoom({ title: 'x'.repeat(201) }), RangeError);
        assert.deepEqual(await store.listRooms(), []);
      });
    });

    describe('failures', () => {
      it('reports an unreachable database as ServiceUnavailableError', async () => {
        const down = openStore(variant.unreachableUrl);
        try {
          const unavailable = (error: unknown): boolean => {
            assert.ok(error instanceof ServiceUnavailableError, String(error));
            assert.equal(error.code, 'ERR_SERVICE_UNAVAILABLE');
            assert.equal(error.message, 'database is unavailable');
            assert.ok(error.cause !== undefined);
            return true;
          };
          await assert.rejects(down.ping(), unavailable);
          await assert.rejects(down.migrate(), unavailable);
          await assert.rejects(accountsOf(down).verifyToken(generateToken()), unavailable);
          await assert.rejects(accountsOf(down).consumeTicket(generateTicket()), unavailable);
          await assert.rejects(accountsOf(down).authenticatePassword('alice', 'pw'), unavailable);
          await assert.rejects(accountsOf(down).createUser({ username: 'alice' }), unavailable);
          // Malformed credentials are still refused without the database.
          await rejectsWith(accountsOf(down).verifyToken('pcu_nope'), 'ERR_INVALID_CREDENTIALS');
        } finally {
          await down.close();
        }
      });

      it('fails closed after close()', async () => {
        const alice = await accounts.createUser({ username: 'alice' });
        const { token } = await accounts.createToken(alice.id);
        await store.close();
        await store.close();
        await assert.rejects(accounts.verifyToken(token), ServiceUnavailableError);
        await assert.rejects(store.ping(), ServiceUnavailableError);
      });
    });
  });
}

describe('DATABASE_URL', () => {
  it('accepts SQLite paths and PostgreSQL URLs', () => {
    assert.deepEqual(parseDatabaseUrl('sqlite:./portcullis.db'), {
      kind: 'sqlite',
      path: './portcullis.db',
    });
    assert.deepEqual(parseDatabaseUrl('sqlite:/abs/path.db'), {
      kind: 'sqlite',
      path: '/abs/path.db',
    });
    assert.deepEqual(parseDatabaseUrl('sqlite:///abs/path.db'), {
      kind: 'sqlite',
      path: '/abs/path.db',
    });
    assert.deepEqual(parseDatabaseUrl('sqlite::memory:'), { kind: 'sqlite', path: ':memory:' });
    for (const url of ['postgres://u:p@h:5432/db', 'postgresql://h/db?sslmode=require']) {
      assert.deepEqual(parseDatabaseUrl(url), { kind: 'postgres', url });
    }
  });

  it('refuses anything else in one line naming DATABASE_URL, never echoing a password', () => {
    for (const url of [
      'mysql://root:hunter2@h/db',
      'portcullis.db',
      '',
      'sqlite:',
      'postgres://hunter2@[bad',
    ]) {
      assert.throws(
        () => openStore(url),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.equal(error.code, 'ERR_CONFIG');
          assert.match(error.message, /^DATABASE_URL /);
          assert.doesNotMatch(error.message, /\n|hunter2/);
          return true;
        },
        url,
      );
    }
  });

  it('opens an in-memory SQLite database', async () => {
    const store = openStore('sqlite::memory:');
    try {
      await store.migrate();
      const user = await new Accounts(store, { passwordParams: FAST_SCRYPT }).createUser({
        username: 'memo',
      });
      assert.equal((await store.getUserById(user.id))?.username, 'memo');
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL schemas side by side', await serviceSuiteOptions('postgres'), () => {
  // Kysely's migrator looked for its tables in every schema of the database: a
  // deployment (or a parallel test) in a neighbouring schema made migrate() skip
  // creating them here and then fail with 42P01.
  it('migrates a schema while another schema of the same database holds its tables', async (t) => {
    const base = await serviceUrl('postgres');
    const first = await createPostgresSchema(base);
    t.after(() => first.drop());
    const second = await createPostgresSchema(base);
    t.after(() => second.drop());
    const neighbour = openStore(first.url);
    t.after(() => neighbour.close());
    await neighbour.migrate();
    const store = openStore(second.url);
    t.after(() => store.close());
    assert.ok((await store.migrate()).length > 0);
    await store.insertUser({ username: 'beside', passwordHash: null });
    assert.equal(await neighbour.getUserByUsername('beside'), undefined);
  });

  it('migrates while other sessions create and drop schemas', async (t) => {
    const base = await serviceUrl('postgres');
    let churning = true;
    const churners = Array.from({ length: 4 }, async () => {
      while (churning) await (await createPostgresSchema(base)).drop();
    });
    t.after(async () => {
      churning = false;
      await Promise.all(churners);
    });
    for (let round = 0; round < 12; round += 1) {
      const schema = await createPostgresSchema(base);
      const store = openStore(schema.url);
      try {
        assert.ok((await store.migrate()).length > 0);
      } finally {
        await store.close();
        await schema.drop();
      }
    }
  });
});

describe('SQLite prepared statements', () => {
  it('are prepared once per SQL text and reused', () => {
    const db = withStatementCache(new Sqlite(':memory:'));
    try {
      const first = db.prepare('SELECT 1 AS one');
      assert.equal(db.prepare('SELECT 1 AS one'), first);
      assert.deepEqual(first.all([]), [{ one: 1 }]);
      assert.notEqual(db.prepare('SELECT 2 AS two'), first);
    } finally {
      db.close();
    }
  });

  it('gives a query of its own while the same text is still being iterated', () => {
    const db = withStatementCache(new Sqlite(':memory:'));
    try {
      db.prepare('CREATE TABLE n (v INTEGER)').run([]);
      for (const v of [1, 2, 3]) db.prepare('INSERT INTO n (v) VALUES (?)').run([v]);
      const sql = 'SELECT v FROM n ORDER BY v';
      const outer = db.prepare(sql).iterate([]);
      assert.deepEqual(outer.next().value, { v: 1 });
      // The cached statement is busy: running the same text again must not throw.
      assert.deepEqual(db.prepare(sql).all([]), [{ v: 1 }, { v: 2 }, { v: 3 }]);
      assert.deepEqual([...outer], [{ v: 2 }, { v: 3 }]);
    } finally {
      db.close();
    }
  });
});
