/**
 * The `portcullis` command line, run in process through `main()` against a real SQLite
 * file (and Redis for cross-process revocation), plus one spawn of the built bin.
 */
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { REVOCATION_BROADCAST_GROUP } from '../../src/auth/revocation.js';
import { AuthenticationError } from '../../src/errors.js';
import { main, type CliIO } from '../../src/gateway/cli.js';
import type { LayerMessage } from '../../src/layers/layer.js';
import { RedisChannelLayer } from '../../src/layers/redis/layer.js';
import { openStore, type Store } from '../../src/store/index.js';
import { eventually } from '../helpers/eventually.js';
import { createPostgresSchema, requireService } from '../helpers/services.js';

const HOUR = 3_600_000;
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  readonly env?: Record<string, string>;
  readonly stdin?: string | CliIO['stdin'];
  readonly shutdown?: AbortSignal;
}

let dir: string;
let databaseUrl: string;
let store: Store;
let accounts: Accounts;

/** Runs the command in process with a clean environment: only what the test sets. */
async function run(argv: string[], options: RunOptions = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const stdin =
    typeof options.stdin === 'string' || options.stdin === undefined
      ? Readable.from(options.stdin === undefined ? [] : [options.stdin])
      : options.stdin;
  const code = await main(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    stdin,
    env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', ...options.env },
    ...(options.shutdown === undefined ? {} : { shutdown: options.shutdown }),
  });
  return { code, stdout, stderr };
}

/** Asserts the command failed with `code` and exactly one `portcullis: ` line on stderr. */
function assertOneLineFailure(result: Result, code: number, pattern?: RegExp): void {
  assert.equal(result.code, code, `exit status (stderr: ${result.stderr})`);
  assert.match(result.stderr, /^portcullis: [^\n]+\n$/);
  assert.equal(result.stdout, '');
  if (pattern !== undefined) assert.match(result.stderr, pattern);
}

/** The token id that `token create` reports on stderr. */
function tokenId(result: Result): string {
  const id = /^token (\d+)/.exec(result.stderr)?.[1];
  assert.ok(id !== undefined, `no token id in ${JSON.stringify(result.stderr)}`);
  return id;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-'));
  databaseUrl = `sqlite:${join(dir, 'x.db')}`;
  store = openStore(databaseUrl);
  accounts = new Accounts(store, { passwordParams: { N: 1024, r: 8, p: 1 } });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('portcullis migrate', () => {
  it('applies the migrations, then reports the schema up to date', async () => {
    const first = await run(['migrate']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^applied 0001-initial\n/);
    const second = await run(['migrate']);
    assert.deepEqual(second, { code: 0, stdout: 'database schema is up to date\n', stderr: '' });
  });

  it('fails in one line when the database is unreachable, without its password', async () => {
    const result = await run(['migrate'], {
      env: { DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:1/test' },
    });
    assertOneLineFailure(
      result,
      1,
      /^portcullis: database is unavailable at postgres:\/\/postgres@127\.0\.0\.1:1\/test \(ECONNREFUSED\); check DATABASE_URL\n$/,
    );
    assert.ok(!result.stderr.includes('s3cret'));
  });

  it('fails in one line on bad configuration, naming the variable', async () => {
    assertOneLineFailure(
      await run(['migrate'], { env: { PORT: 'abc' } }),
      1,
      /^portcullis: PORT must be an integer from 0 to 65535 \(got "abc"\)\n$/,
    );
    for (const [env, pattern] of [
      [{ HOST: '999.1.1.1' }, /^portcullis: HOST must be an IP address or a host name/],
      [{ PORT: '70000' }, /^portcullis: PORT must be an integer from 0 to 65535/],
      [{ TOKEN_TTL: '30 days' }, /^portcullis: TOKEN_TTL must be a duration such as 30d/],
      [{ PRESENCE_TTL: '0s' }, /^portcullis: PRESENCE_TTL must be a duration from 1s to 1h/],
    ] as const) {
      assertOneLineFailure(await run(['serve'], { env }), 1, pattern);
    }
    const secret = 'short-secret';
    const result = await run(['migrate'], { env: { JWT_SECRET: secret } });
    assertOneLineFailure(result, 1, /^portcullis: JWT_SECRET must be at least 32 bytes/);
    assert.ok(!result.stderr.includes(secret));
  });

  it('reads DATABASE_URL from --config', async () => {
    const file = join(dir, 'portcullis.json');
    const other = join(dir, 'other.db');
    await writeFile(file, JSON.stringify({ databaseUrl: `sqlite:${other}` }));
    // An empty variable is unset, so the file's DATABASE_URL applies.
    const result = await run(['migrate', '--config', file], { env: { DATABASE_URL: '' } });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(existsSync(other));
  });
});

describe('portcullis user create', () => {
  it('creates a user without a password, and refuses a taken name in one line', async () => {
    const created = await run(['user', 'create', 'alice']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^created user "alice" \(id \d+\); it has no password/);
    const alice = await store.getUserByUsername('alice');
    assert.equal(alice?.isStaff, false);

    const again = await run(['user', 'create', 'alice']);
    assertOneLineFailure(again, 1, /^portcullis: username "alice" is already taken\n$/);
  });

  it('creates a staff user whose password comes from stdin', async () => {
    const result = await run(['user', 'create', 'root', '--staff', '--password-stdin'], {
      stdin: 'correct horse battery\nignored second line\n',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^created staff user "root" \(id \d+\)\n$/);
    const user = await accounts.authenticatePassword('root', 'correct horse battery');
    assert.equal(user?.username, 'root');
    assert.equal(user?.isStaff, true);
  });

  it('reads a password without a trailing newline, split across chunks', async () => {
    // 'ö' is C3 B6 in UTF-8: the chunks split it in two.
    const stdin = Readable.from([
      Buffer.from('pass'),
      Buffer.from([0x77, 0xc3]),
      Buffer.from([0xb6, 0x72, 0x64]),
    ]);
    const result = await run(['user', 'create', 'bob', '--password-stdin'], { stdin });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(await accounts.authenticatePassword('bob', 'passwörd'));
  });

  it('refuses an empty, short or terminal password in one line', async () => {
    assertOneLineFailure(
      await run(['user', 'create', 'bob', '--password-stdin'], { stdin: '\n' }),
      1,
      /read an empty password/,
    );
    assertOneLineFailure(
      await run(['user', 'create', 'bob', '--password-stdin']),
      1,
      /read an empty password/,
    );
    assertOneLineFailure(
      await run(['user', 'create', 'bob', '--password-stdin'], { stdin: 'seven77\n' }),
      1,
      /password must be at least 8 characters/,
    );
    const terminal = Object.assign(Readable.from([]), { isTTY: true });
    assertOneLineFailure(
      await run(['user', 'create', 'bob', '--password-stdin'], { stdin: terminal }),
      1,
      /reads a piped password, not a terminal/,
    );
    await store.migrate();
    assert.equal(await store.getUserByUsername('bob'), undefined);
  });

  it('refuses an invalid username and a password on the command line', async () => {
    assertOneLineFailure(
      await run(['user', 'create', 'no spaces']),
      1,
      /^portcullis: username must be/,
    );
    assertOneLineFailure(
      await run(['user', 'create', 'bob', '--password', 'hunter22']),
      2,
      /unknown option --password for user create/,
    );
  });
});

describe('portcullis user password', () => {
  beforeEach(async () => {
    const created = await run(['user', 'create', 'alice', '--password-stdin'], {
      stdin: 'the first password\n',
    });
    assert.equal(created.code, 0, created.stderr);
  });

  it('generates a new password, alone on stdout and shown once', async () => {
    const result = await run(['user', 'password', 'alice']);
    assert.equal(result.code, 0, result.stderr);
    const password = /^([A-Za-z0-9_-]{16})\n$/.exec(result.stdout)?.[1];
    assert.ok(password !== undefined, `not a generated password: ${JSON.stringify(result.stdout)}`);
    assert.match(
      result.stderr,
      /^new password for "alice", shown only once; its tokens stay valid/,
    );
    assert.equal((await accounts.authenticatePassword('alice', password))?.username, 'alice');
    assert.equal(await accounts.authenticatePassword('alice', 'the first password'), null);
  });

  it('sets the password read from stdin', async () => {
    const result = await run(['user', 'password', 'alice', '--password-stdin'], {
      stdin: 'a second password\n',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^changed the password of "alice"; its tokens stay valid/);
    assert.equal(
      (await accounts.authenticatePassword('alice', 'a second password'))?.username,
      'alice',
    );
    assert.equal(await accounts.authenticatePassword('alice', 'the first password'), null);
  });

  it('refuses an unknown user, a short password and a missing name in one line', async () => {
    assertOneLineFailure(
      await run(['user', 'password', 'zed']),
      1,
      /^portcullis: no user named "zed"\n$/,
    );
    assertOneLineFailure(
      await run(['user', 'password', 'alice', '--password-stdin'], { stdin: 'short\n' }),
      1,
      /password must be at least 8 characters/,
    );
    assertOneLineFailure(await run(['user', 'password']), 2, /user password needs NAME/);
    assert.ok(await accounts.authenticatePassword('alice', 'the first password'));
  });
});

describe('portcullis token create', () => {
  beforeEach(async () => {
    assert.equal((await run(['user', 'create', 'alice'])).code, 0);
  });

  it('prints only the token on stdout, and its id and expiry on stderr', async () => {
    const result = await run(['token', 'create', 'alice', '--name', 'laptop']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^pcu_[0-9A-Za-z]{38}\n$/);
    assert.match(
      result.stderr,
      /^token \d+ \("laptop"\) for "alice" expires \S+; it is shown only once\n$/,
    );
    const verified = await accounts.verifyToken(result.stdout.trim());
    assert.equal(verified.user.username, 'alice');
    assert.equal(verified.tokenId, tokenId(result));
    const [info] = await store.listTokens(verified.user.id);
    assert.equal(info?.name, 'laptop');
    // The default TTL is 30 days.
    const expiresIn = (verified.expiresAt?.getTime() ?? 0) - Date.now();
    assert.ok(Math.abs(expiresIn - 30 * 24 * HOUR) < 60_000, `expires in ${expiresIn} ms`);
  });

  it('sets the expiry from --ttl, then TOKEN_TTL', async () => {
    const before = Date.now();
    const hour = await run(['token', 'create', 'alice', '--ttl', '1h'], {
      env: { TOKEN_TTL: '5d' },
    });
    const after = Date.now();
    const { expiresAt } = await accounts.verifyToken(hour.stdout.trim());
    assert.ok(expiresAt !== null);
    assert.ok(expiresAt.getTime() >= before + HOUR && expiresAt.getTime() <= after + HOUR);

    const fromEnv = await run(['token', 'create', 'alice'], { env: { TOKEN_TTL: '2h' } });
    const env = await accounts.verifyToken(fromEnv.stdout.trim());
    const expiresIn = (env.expiresAt?.getTime() ?? 0) - Date.now();
    assert.ok(Math.abs(expiresIn - 2 * HOUR) < 60_000);

    const never = await run(['token', 'create', 'alice', '--ttl', 'none']);
    assert.equal((await accounts.verifyToken(never.stdout.trim())).expiresAt, null);
    assert.match(never.stderr, /never expires/);
  });

  it('refuses a bad --ttl as a usage error', async () => {
    assertOneLineFailure(
      await run(['token', 'create', 'alice', '--ttl', 'bogus']),
      2,
      /^portcullis: --ttl must be a duration such as 30d, 12h, 90m or 45s, or "none" \(got "bogus"\); usage: portcullis token create/,
    );
    assertOneLineFailure(
      await run(['token', 'create', 'alice', '--ttl']),
      2,
      /--ttl needs a value/,
    );
  });

  it('refuses an unknown user in one line', async () => {
    assertOneLineFailure(
      await run(['token', 'create', 'nobody']),
      1,
      /^portcullis: no user named "nobody"\n$/,
    );
  });
});

describe('portcullis token revoke', () => {
  beforeEach(async () => {
    assert.equal((await run(['user', 'create', 'alice'])).code, 0);
  });

  it('revokes one token by id, and refuses it a second time', async () => {
    const created = await run(['token', 'create', 'alice']);
    const token = created.stdout.trim();
    const id = tokenId(created);
    const revoked = await run(['token', 'revoke', id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, 'revoked 1 token\n');
    // Without Redis a running gateway cannot be told; the note says what happens instead.
    assert.match(
      revoked.stderr,
      /^note: without REDIS_URL, running gateways on this database close/,
    );
    await assert.rejects(accounts.verifyToken(token), (error: unknown) => {
      assert.ok(error instanceof AuthenticationError);
      assert.equal(error.code, 'ERR_TOKEN_REVOKED');
      return true;
    });
    assertOneLineFailure(
      await run(['token', 'revoke', id]),
      1,
      new RegExp(`^portcullis: no live token with id ${id} \\(unknown or already revoked\\)\\n$`),
    );
    assertOneLineFailure(await run(['token', 'revoke', '999']), 1, /no live token with id 999/);
  });

  it('revokes every token of a user with --user', async () => {
    const tokens = [
      (await run(['token', 'create', 'alice'])).stdout.trim(),
      (await run(['token', 'create', 'alice'])).stdout.trim(),
    ];
    const result = await run(['token', 'revoke', '--user', 'alice']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'revoked 2 tokens of "alice"\n');
    for (const token of tokens) await assert.rejects(accounts.verifyToken(token));
    const none = await run(['token', 'revoke', '--user', 'alice']);
    assert.deepEqual(none, { code: 0, stdout: 'revoked 0 tokens of "alice"\n', stderr: '' });
    assertOneLineFailure(await run(['token', 'revoke', '--user', 'bob']), 1, /no user named "bob"/);
  });

  it('takes exactly one of ID and --user, and never echoes a pasted token', async () => {
    assertOneLineFailure(await run(['token', 'revoke']), 2, /needs a token ID or --user NAME/);
    assertOneLineFailure(await run(['token', 'revoke', '1', '--user', 'alice']), 2, /not both/);
    const created = await run(['token', 'create', 'alice']);
    const token = created.stdout.trim();
    const result = await run(['token', 'revoke', token]);
    assertOneLineFailure(result, 2, /not the token itself/);
    assert.ok(!result.stderr.includes(token.slice(4, 20)));
  });

  describe('with REDIS_URL', () => {
    let layer: RedisChannelLayer | undefined;
    // The gateway's Redis names are fixed, so ids from this fresh database (1, 2, ...)
    // would collide with other suites sharing the Redis: start them somewhere unused.
    beforeEach(() => {
      const db = new Sqlite(databaseUrl.slice('sqlite:'.length));
      const start = 1_000_000_000 + randomInt(1_000_000_000);
      db.prepare(`delete from sqlite_sequence where name in ('tokens', 'users')`).run();
      const insert = db.prepare('insert into sqlite_sequence (name, seq) values (?, ?)');
      insert.run('tokens', start);
      insert.run('users', start);
      db.close();
    });
    let membership: [group: string, channel: string] | undefined;
    afterEach(async () => {
      if (membership !== undefined) await layer?.groupDiscard(...membership);
      await layer?.close();
      layer = undefined;
      membership = undefined;
    });

    /** Joins `group` on Redis and collects what is sent to it. */
    async function listen(url: string, group: string): Promise<LayerMessage[]> {
      layer = await RedisChannelLayer.connect({ url });
      const channel = layer.newChannel('test');
      const received: LayerMessage[] = [];
      layer.attach(channel, (envelope) => received.push(envelope.message));
      await layer.groupAdd(group, channel);
      membership = [group, channel];
      return received;
    }

    it('closes the live sockets of a revoked token on every gateway', async (t) => {
      const url = await requireService(t, 'redis');
      if (url === undefined) return;
      const id = tokenId(await run(['token', 'create', 'alice']));
      assert.ok(Number(id) > 1_000_000_000);
      const received = await listen(url, REVOCATION_BROADCAST_GROUP);
      const result = await run(['token', 'revoke', id], { env: { REDIS_URL: url } });
      assert.deepEqual(result, { code: 0, stdout: 'revoked 1 token\n', stderr: '' });
      const ours = () => received.filter((message) => message['credentialId'] === id);
      await eventually(() => ours().length > 0, 2_000, 'auth.revoked for the token');
      assert.equal(ours()[0]?.type, 'auth.revoked');
    });

    it('closes every socket of a user revoked with --user', async (t) => {
      const url = await requireService(t, 'redis');
      if (url === undefined) return;
      await run(['user', 'create', 'carol']);
      await run(['token', 'create', 'carol']);
      const carol = await store.getUserByUsername('carol');
      assert.ok(carol !== undefined);
      assert.ok(Number(carol.id) > 1_000_000_000);
      const received = await listen(url, REVOCATION_BROADCAST_GROUP);
      const result = await run(['token', 'revoke', '--user', 'carol'], { env: { REDIS_URL: url } });
      assert.equal(result.code, 0, result.stderr);
      const ours = () => received.filter((message) => message['userId'] === carol.id);
      await eventually(() => ours().length > 0, 2_000, 'auth.revoked for the user');
      assert.equal(ours()[0]?.type, 'auth.revoked');
    });
  });

  it('says in one line when Redis is unreachable, after revoking in the store', async () => {
    const created = await run(['token', 'create', 'alice']);
    const result = await run(['token', 'revoke', tokenId(created)], {
      env: { REDIS_URL: 'redis://127.0.0.1:1' },
    });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, 'revoked 1 token\n');
    assert.match(
      result.stderr,
      /^portcullis: revoked, but live sockets could not be closed: redis is unavailable[^\n]*; check REDIS_URL\n$/,
    );
    await assert.rejects(accounts.verifyToken(created.stdout.trim()));
  });
});

describe('portcullis room create', () => {
  it('prints the new room id', async () => {
    const result = await run(['room', 'create', 'Lobby']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\n$/);
    assert.equal(result.stderr, 'created room "Lobby"\n');
    const room = await store.getRoom(result.stdout.trim());
    assert.equal(room?.title, 'Lobby');
    assert.equal(room?.staffOnly, false);
  });

  it('creates a staff-only room with --staff-only', async () => {
    const result = await run(['room', 'create', 'Staff room', '--staff-only']);
    assert.equal(result.code, 0, result.stderr);
    const room = await store.getRoom(result.stdout.trim());
    assert.equal(room?.title, 'Staff room');
    assert.equal(room?.staffOnly, true);
  });

  it('needs a title', async () => {
    assertOneLineFailure(await run(['room', 'create']), 2, /room create needs TITLE/);
    assertOneLineFailure(await run(['room', 'create', '   ']), 1, /room title must be/);
  });
});

describe('portcullis command line', () => {
  it('refuses unknown commands, options and arguments with status 2 in one line', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['--frobnicate'], /expected a command before "--frobnicate"/],
      [['user'], /"user" needs a subcommand: create/],
      [['token', 'delete', '1'], /unknown command "token delete"/],
      [['migrate', '--bogus'], /unknown option --bogus for migrate/],
      [['migrate', 'extra'], /unexpected argument "extra" for migrate/],
      [['room', 'create', 'x', '--staff-only=yes'], /--staff-only takes no value/],
      [['user', 'create', 'a', 'b'], /unexpected argument "b"/],
      [
        ['token', 'create', 'a', 'pcu_notEchoed'],
        /unexpected argument \(a credential-like value\)/,
      ],
      [
        ['serve', '--port', 'abc'],
        /^portcullis: --port must be an integer from 0 to 65535 \(got "abc"\)\n$/,
      ],
      [['serve', '--workers', '2'], /--workers 2 needs REDIS_URL/],
    ];
    for (const [argv, pattern] of cases) {
      assertOneLineFailure(await run(argv), 2, pattern);
    }
  });

  it('prints help on stdout for --help, and on stderr with status 2 for nothing', async () => {
    for (const argv of [['--help'], ['help'], ['-h']]) {
      const result = await run(argv);
      assert.equal(result.code, 0);
      for (const line of [
        'serve [--port N] [--host H] [--bench]',
        'migrate',
        'user create NAME [--staff] [--password-stdin]',
        'user password NAME [--password-stdin]',
        'token create NAME [--ttl 30d] [--name LABEL]',
        'token revoke (ID | --user NAME)',
        'room create TITLE [--staff-only]',
      ]) {
        assert.ok(result.stdout.includes(`portcullis ${line}`), line);
      }
    }
    const nothing = await run([]);
    assert.equal(nothing.code, 2);
    assert.equal(nothing.stdout, '');
    assert.match(nothing.stderr, /^Usage:/);
    const one = await run(['token', 'create', '--help']);
    assert.equal(one.code, 0);
    assert.match(one.stdout, /^Usage: portcullis token create NAME/);
  });

  it('prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    assert.deepEqual(await run(['--version']), { code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('portcullis serve', () => {
  let blocker: Server | undefined;
  after(() => blocker?.close());

  async function freePort(): Promise<Server> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  /** Polls `GET /readyz` until the gateway answers: its status, or 0 after 10 s. */
  async function readyz(port: number): Promise<number> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (response) => response.status,
        () => 0,
      );
      if (status !== 0) return status;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return 0;
  }

  function portOf(server: Server): number {
    const address = server.address();
    assert.ok(typeof address === 'object' && address !== null);
    return address.port;
  }

  it('serves until shut down, then exits 0', async () => {
    const probe = await freePort();
    const port = portOf(probe);
    await new Promise((resolve) => probe.close(resolve));
    const shutdown = new AbortController();
    const serving = run(['serve', '--port', String(port)], { shutdown: shutdown.signal });
    const ready = await readyz(port);
    shutdown.abort();
    const result = await serving;
    assert.equal(ready, 200, `the gateway never answered /readyz (stderr: ${result.stderr})`);
    assert.equal(result.code, 0, result.stderr);
    // serve migrated the embedded database on start.
    assert.equal((await run(['migrate'])).stdout, 'database schema is up to date\n');
  });

  it('refuses a PostgreSQL database never migrated, in one line naming portcullis migrate', async (t) => {
    const base = await requireService(t, 'postgres');
    if (base === undefined) return;
    const schema = await createPostgresSchema(base);
    t.after(() => schema.drop());
    const probe = await freePort();
    const port = portOf(probe);
    await new Promise((resolve) => probe.close(resolve));
    const env = { DATABASE_URL: schema.url, PORT: String(port) };
    // Before the check, serve started on it and answered /readyz 200 while every
    // request failed: the abort stops such a gateway, so the test fails, not hangs.
    const result = await run(['serve'], { env, shutdown: AbortSignal.timeout(10_000) });
    const where = new URL(base);
    assertOneLineFailure(
      result,
      1,
      new RegExp(
        `^portcullis: the database at postgres://${where.username}@${where.host}${where.pathname} has no Portcullis schema yet: run portcullis migrate\n$`,
      ),
    );
    assert.equal((await run(['migrate'], { env })).code, 0);
    const shutdown = new AbortController();
    const serving = run(['serve'], { env, shutdown: shutdown.signal });
    const ready = await readyz(port);
    shutdown.abort();
    const served = await serving;
    assert.equal(ready, 200, served.stderr);
    assert.equal(served.code, 0, served.stderr);
  });

  it('seeds the demo once, then says how to set a new password', async () => {
    const serveDemo = async (): Promise<Result> => {
      const probe = await freePort();
      const port = portOf(probe);
      await new Promise((resolve) => probe.close(resolve));
      const shutdown = new AbortController();
      const serving = run(['serve', '--demo', '--port', String(port)], {
        shutdown: shutdown.signal,
      });
      const ready = await readyz(port);
      shutdown.abort();
      const result = await serving;
      assert.equal(ready, 200, result.stderr);
      assert.equal(result.code, 0, result.stderr);
      return result;
    };
    const first = await serveDemo();
    const password = /^ {2}alice \(staff\) {2}password: (\S+)$/m.exec(first.stdout)?.[1];
    assert.ok(password !== undefined, first.stdout);
    assert.ok(await accounts.authenticatePassword('alice', password));
    const second = await serveDemo();
    assert.doesNotMatch(second.stdout, /password: /);
    assert.match(second.stdout, /New one: npx portcullis user password alice\n/);
  });

  it('reports a taken port in one line', async () => {
    blocker = await freePort();
    const result = await run(['serve'], { env: { PORT: String(portOf(blocker)) } });
    assertOneLineFailure(
      result,
      1,
      new RegExp(`^portcullis: port ${portOf(blocker)} on 127\\.0\\.0\\.1 is already in use`),
    );
  });
});

describe(
  'bin/portcullis.js',
  { skip: !existsSync(join(root, 'dist/gateway/cli.js')) && 'run npm run build first' },
  () => {
    it('runs the built CLI and exits non-zero with one stderr line on a bad command', () => {
      const bin = join(root, 'bin/portcullis.js');
      const bad = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.equal(bad.stdout, '');
      assert.match(bad.stderr, /^portcullis: unknown command "frobnicate"[^\n]*\n$/);
      const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
      assert.equal(version.status, 0, version.stderr);
      assert.match(version.stdout, /^\d+\.\d+\.\d+/);
    });
  },
);
