// Django mode settings (SPEC §8, §11): defaults, what settings.py values map to, and
// one-line errors that name the variable and never repeat a secret.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/gateway/config.js';
import type { LoadConfigOptions } from '../../src/gateway/config.js';
import { ConfigError } from '../../src/errors.js';

const SECRET = 'django-insecure-0123456789abcdefghijklmnopqrstuvwxyz!@#$';
const BASE = { DJANGO_DATABASE_URL: 'sqlite:/srv/app/db.sqlite3' };

function configError(options: LoadConfigOptions): string {
  try {
    loadConfig(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(!error.message.includes('\n'), 'one line');
    assert.ok(!error.message.includes(SECRET), 'never the secret');
    return error.message;
  }
  return assert.fail('loadConfig did not throw');
}

describe('Django mode configuration', () => {
  test('off without DJANGO_DATABASE_URL', () => {
    assert.equal(loadConfig({ env: {} }).django, null);
  });

  test('defaults follow Django’s and SimpleJWT’s', () => {
    const { django } = loadConfig({ env: { ...BASE, DJANGO_SECRET_KEY: SECRET } });
    assert.deepEqual(django, {
      databaseUrl: 'sqlite:/srv/app/db.sqlite3',
      secretKey: SECRET,
      jwtSigningKey: null,
      simpleJwt: {
        algorithm: 'HS256',
        verifyingKey: null,
        audience: null,
        issuer: null,
        leeway: 0,
        userIdField: 'id',
        userIdClaim: 'user_id',
        tokenTypeClaim: 'token_type',
        jtiClaim: 'jti',
        tokenTypes: ['access'],
      },
      sessionCookie: 'sessionid',
      sessionCookieAge: 1_209_600,
      revalidateIntervalMs: 5_000,
      userTable: 'auth_user',
      roomTable: null,
      channelsRedisPrefix: 'asgi',
    });
  });

  test('SIMPLE_JWT settings as JSON, from the environment or a config file', () => {
    const simpleJwt = {
      ALGORITHM: 'RS256',
      VERIFYING_KEY: '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----',
      AUDIENCE: ['web', 'app'],
      ISSUER: 'https://api.example.com',
      LEEWAY: 5,
      USER_ID_FIELD: 'username',
      USER_ID_CLAIM: 'uid',
      TOKEN_TYPE_CLAIM: 'kind',
      JTI_CLAIM: null,
      AUTH_TOKEN_CLASSES: [
        'rest_framework_simplejwt.tokens.AccessToken',
        'rest_framework_simplejwt.tokens.SlidingToken',
      ],
    };
    const expected = {
      algorithm: 'RS256',
      verifyingKey: simpleJwt.VERIFYING_KEY,
      audience: ['web', 'app'],
      issuer: 'https://api.example.com',
      leeway: 5,
      userIdField: 'username',
      userIdClaim: 'uid',
      tokenTypeClaim: 'kind',
      jtiClaim: null,
      tokenTypes: ['access', 'sliding'],
    };
    const fromEnv = loadConfig({ env: { ...BASE, DJANGO_SIMPLE_JWT: JSON.stringify(simpleJwt) } });
    assert.deepEqual(fromEnv.django?.simpleJwt, expected);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
    try {
      const file = join(dir, 'portcullis.json');
      writeFileSync(
        file,
        JSON.stringify({
          djangoDatabaseUrl: BASE.DJANGO_DATABASE_URL,
          djangoSimpleJwt: simpleJwt,
          djangoSessionCookieAge: 3600,
        }),
      );
      const fromFile = loadConfig({ env: {}, file });
      assert.deepEqual(fromFile.django?.simpleJwt, expected);
      assert.equal(fromFile.django?.sessionCookieAge, 3600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the other settings', () => {
    const { django } = loadConfig({
      env: {
        ...BASE,
        REDIS_URL: 'redis://127.0.0.1:6379',
        DJANGO_SESSION_COOKIE: 'app_session',
        DJANGO_SESSION_COOKIE_AGE: '86400',
        DJANGO_REVALIDATE_INTERVAL: '30s',
        DJANGO_USER_TABLE: 'accounts_user',
        DJANGO_ROOM_TABLE: 'chat_room',
        DJANGO_JWT_SIGNING_KEY: `${SECRET}-jwt`,
        CHANNELS_REDIS_PREFIX: 'myapp',
      },
    });
    assert.equal(django?.sessionCookie, 'app_session');
    assert.equal(django?.sessionCookieAge, 86_400);
    assert.equal(django?.revalidateIntervalMs, 30_000);
    assert.equal(django?.userTable, 'accounts_user');
    assert.equal(django?.roomTable, 'chat_room');
    assert.equal(django?.jwtSigningKey, `${SECRET}-jwt`);
    assert.equal(django?.channelsRedisPrefix, 'myapp');
  });

  test('mistakes are one line naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ DJANGO_SECRET_KEY: SECRET }, /^DJANGO_SECRET_KEY is set but Django mode is off/],
      [{ CHANNELS_REDIS_PREFIX: 'asgi' }, /^CHANNELS_REDIS_PREFIX is set but Django mode is off/],
      [{ ...BASE, CHANNELS_REDIS_PREFIX: 'asgi' }, /^CHANNELS_REDIS_PREFIX needs REDIS_URL/],
      [{ ...BASE, JWT_SECRET: SECRET }, /^JWT_SECRET and DJANGO_DATABASE_URL are exclusive/],
      [{ DJANGO_DATABASE_URL: 'mysql://db/app' }, /^DJANGO_DATABASE_URL has unsupported scheme/],
      [{ ...BASE, DJANGO_SIMPLE_JWT: '{not json' }, /^DJANGO_SIMPLE_JWT must be a JSON object/],
      [{ ...BASE, DJANGO_SIMPLE_JWT: '[]' }, /^DJANGO_SIMPLE_JWT must be a JSON object/],
      [
        { ...BASE, DJANGO_SIMPLE_JWT: '{"ROTATE":1}' },
        /has unknown key "ROTATE"; known: ALGORITHM/,
      ],
      [
        { ...BASE, DJANGO_SIMPLE_JWT: JSON.stringify({ SIGNING_KEY: SECRET }) },
        /must not hold SIGNING_KEY: set DJANGO_JWT_SIGNING_KEY/,
      ],
      [{ ...BASE, DJANGO_SIMPLE_JWT: '{"ALGORITHM":"none"}' }, /ALGORITHM must be one of HS256/],
      [{ ...BASE, DJANGO_SIMPLE_JWT: '{"ALGORITHM":"RS256"}' }, /RS256 needs VERIFYING_KEY/],
      [
        { ...BASE, DJANGO_SIMPLE_JWT: '{"VERIFYING_KEY":"pem"}' },
        /VERIFYING_KEY is for RS\*\/ES\* algorithms/,
      ],
      [
        { ...BASE, DJANGO_SIMPLE_JWT: '{"AUTH_TOKEN_CLASSES":["x.RefreshToken"]}' },
        /AUTH_TOKEN_CLASSES must list rest_framework_simplejwt.tokens.AccessToken/,
      ],
      [{ ...BASE, DJANGO_SIMPLE_JWT: '{"LEEWAY":-1}' }, /LEEWAY must be a non-negative number/],
      [
        { ...BASE, DJANGO_REVALIDATE_INTERVAL: '0s' },
        /^DJANGO_REVALIDATE_INTERVAL must be a duration from 1s to 1h/,
      ],
      [
        { ...BASE, DJANGO_REVALIDATE_INTERVAL: '2h' },
        /^DJANGO_REVALIDATE_INTERVAL must be a duration/,
      ],
      [
        { ...BASE, DJANGO_SESSION_COOKIE_AGE: '2w' },
        /^DJANGO_SESSION_COOKIE_AGE must be SESSION_COOKIE_AGE/,
      ],
      [{ ...BASE, DJANGO_SESSION_COOKIE: 'a b' }, /^DJANGO_SESSION_COOKIE must be a cookie name/],
      [{ ...BASE, DJANGO_USER_TABLE: 'users; drop' }, /^DJANGO_USER_TABLE must be a table name/],
      [{ ...BASE, DJANGO_SECRET_KEY: '   ' }, /^DJANGO_SECRET_KEY must not be blank/],
    ];
    for (const [env, pattern] of cases) assert.match(configError({ env }), pattern);
  });
});
