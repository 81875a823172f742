import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import {
  defaultAllowedOrigins,
  loadConfig,
  type LoadConfigOptions,
} from '../../src/gateway/config.js';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/gateway/durations.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const GOOD_SECRET = 'x'.repeat(32);

const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
let files = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The ConfigError `loadConfig` throws, after checking it is one line. */
function configError(options: LoadConfigOptions): string {
  try {
    loadConfig(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_CONFIG');
    assert.doesNotMatch(error.message, /\n/);
    return error.message;
  }
  assert.fail('loadConfig did not throw');
}

describe('loadConfig defaults', () => {
  it('match SPEC §8 with an empty environment', () => {
    const config = loadConfig({ env: {} });
    assert.deepEqual(config, {
      port: 8000,
      host: '127.0.0.1',
      databaseUrl: 'sqlite:./portcullis.db',
      redisUrl: null,
      redisPrefix: 'portcullis',
      redisCluster: false,
      allowedOrigins: ['http://127.0.0.1:8000', 'http://localhost:8000'],
      defaultOrigins: true,
      tokenTtlMs: 30 * DAY,
      presenceTtlMs: 30_000,
      jwt: { secret: null, jwksUrl: null, issuer: null, audience: null },
      maxConnectionsPerUser: 32,
      maxConnectionsPerAddress: 256,
      handshakeRefusal: false,
      publishApiKey: null,
      enableQueryToken: false,
      logLevel: 'info',
      bench: false,
      workers: 1,
      configFile: null,
      django: null,
    });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.jwt));
    assert.ok(Object.isFrozen(config.allowedOrigins));
  });

  it('treat an empty variable as unset', () => {
    const config = loadConfig({ env: { PORT: '', REDIS_URL: '', TOKEN_TTL: '' } });
    assert.equal(config.port, 8000);
    assert.equal(config.redisUrl, null);
    assert.equal(config.tokenTtlMs, 30 * DAY);
  });

  it('read every variable', () => {
    const config = loadConfig({
      env: {
        PORT: '9000',
        HOST: '0.0.0.0',
        DATABASE_URL: 'postgres://app:pw@db.internal:5432/app',
        REDIS_URL: 'redis://:pw@cache:6379/2',
        ALLOWED_ORIGINS: 'https://chat.example.com, https://admin.example.com',
        TOKEN_TTL: '12h',
        JWT_JWKS_URL: 'https://auth.example.com/.well-known/jwks.json',
        JWT_ISSUER: 'https://auth.example.com/',
        JWT_AUDIENCE: 'chat',
        PUBLISH_API_KEY: 'k'.repeat(16),
        ENABLE_QUERY_TOKEN: 'yes',
        LOG_LEVEL: 'DEBUG',
      },
    });
    assert.equal(config.port, 9000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.databaseUrl, 'postgres://app:pw@db.internal:5432/app');
    assert.equal(config.redisUrl, 'redis://:pw@cache:6379/2');
    assert.deepEqual(config.allowedOrigins, [
      'https://chat.example.com',
      'https://admin.example.com',
    ]);
    assert.equal(config.defaultOrigins, false);
    assert.equal(config.tokenTtlMs, 12 * HOUR);
    assert.deepEqual(config.jwt, {
      secret: null,
      jwksUrl: 'https://auth.example.com/.well-known/jwks.json',
      issuer: 'https://auth.example.com/',
      audience: 'chat',
    });
    assert.equal(config.publishApiKey, 'k'.repeat(16));
    assert.equal(config.enableQueryToken, true);
    assert.equal(config.logLevel, 'debug');
  });

  it('take serve flags', () => {
    const config = loadConfig({
      env: { REDIS_URL: 'redis://127.0.0.1:6379' },
      flags: { port: '0', host: '[::1]', bench: true, workers: '3' },
    });
    assert.equal(config.port, 0);
    assert.equal(config.host, '::1');
    assert.equal(config.bench, true);
    assert.equal(config.workers, 3);
  });
});

describe('loadConfig precedence', () => {
  it('is flags, then the environment, then the file, then the defaults', () => {
    const file = configFile({ port: 1001, host: '10.0.0.1', logLevel: 'warn' });
    const env = { PORT: '1002', HOST: '10.0.0.2' };
    const all = loadConfig({ env, file, flags: { port: 1003 } });
    assert.equal(all.port, 1003);
    assert.equal(all.host, '10.0.0.2');
    assert.equal(all.logLevel, 'warn');
    assert.equal(all.tokenTtlMs, 30 * DAY);
    assert.equal(all.configFile, file);
    assert.equal(loadConfig({ env, file }).port, 1002);
    assert.equal(loadConfig({ env: {}, file }).port, 1001);
  });

  it('finds the file through PORTCULLIS_CONFIG, and an explicit file wins over it', () => {
    const fromEnv = configFile({ PORT: '2001' });
    const explicit = configFile({ PORT: '2002' });
    assert.equal(loadConfig({ env: { PORTCULLIS_CONFIG: fromEnv } }).port, 2001);
    assert.equal(loadConfig({ env: { PORTCULLIS_CONFIG: fromEnv }, file: explicit }).port, 2002);
  });

  it('accepts env names or camelCase keys, JSON types, and null as unset', () => {
    const file = configFile({
      DATABASE_URL: 'sqlite::memory:',
      allowedOrigins: ['https://a.example', 'https://b.example'],
      enableQueryToken: true,
      tokenTtl: 'none',
      redisUrl: null,
    });
    const config = loadConfig({ env: {}, file });
    assert.equal(config.databaseUrl, 'sqlite::memory:');
    assert.deepEqual(config.allowedOrigins, ['https://a.example', 'https://b.example']);
    assert.equal(config.enableQueryToken, true);
    assert.equal(config.tokenTtlMs, null);
    assert.equal(config.redisUrl, null);
  });
});

describe('loadConfig: Redis namespace and cluster (SPEC §8, §12)', () => {
  it('reads REDIS_PREFIX and REDIS_CLUSTER', () => {
    const config = loadConfig({
      env: {
        REDIS_URL: 'redis://node-1:7000',
        REDIS_PREFIX: 'team-a.chat:prod',
        REDIS_CLUSTER: 'yes',
      },
    });
    assert.equal(config.redisPrefix, 'team-a.chat:prod');
    assert.equal(config.redisCluster, true);
  });

  it('never repeats a cluster URL, which may carry a password', () => {
    const message = configError({
      env: { REDIS_CLUSTER: 'true', REDIS_URL: 'redis://:secret@node-1:7000/3' },
    });
    assert.doesNotMatch(message, /secret/);
  });
});

describe('loadConfig errors name the variable in one line', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /^PORT must be an integer from 0 to 65535 \(got "abc"\)$/],
    [{ PORT: '65536' }, /^PORT must be an integer from 0 to 65535 \(got "65536"\)$/],
    [{ PORT: '-1' }, /^PORT must be an integer/],
    [{ HOST: 'not a host' }, /^HOST must be an IP address or a host name \(got "not a host"\)$/],
    [{ HOST: '999.1.1.1' }, /^HOST must be an IP address or a host name \(got "999.1.1.1"\)$/],
    [{ HOST: '10.0.0' }, /^HOST must be an IP address or a host name \(got "10.0.0"\)$/],
    [{ PRESENCE_TTL: '1ms' }, /^PRESENCE_TTL must be a duration from 1s to 1h/],
    [{ DATABASE_URL: 'mysql://localhost/db' }, /^DATABASE_URL has unsupported scheme "mysql:"/],
    [{ REDIS_URL: 'http://localhost:6379' }, /^REDIS_URL must be a redis:\/\//],
    [
      { REDIS_PREFIX: 'my app' },
      /^REDIS_PREFIX must be 1 to 64 letters, digits, "-", "_", "\." or ":" \(got "my app"\)$/,
    ],
    [{ REDIS_PREFIX: 'app{1}' }, /^REDIS_PREFIX must be 1 to 64 letters/],
    [{ REDIS_PREFIX: 'x'.repeat(65) }, /^REDIS_PREFIX must be 1 to 64 letters/],
    [{ REDIS_PREFIX: ' ' }, /^REDIS_PREFIX must be 1 to 64 letters/],
    [
      { REDIS_CLUSTER: 'maybe', REDIS_URL: 'redis://r' },
      /^REDIS_CLUSTER must be true, false, 1, 0, yes or no \(got "maybe"\)$/,
    ],
    [
      { REDIS_CLUSTER: 'true' },
      /^REDIS_CLUSTER is true but REDIS_URL is not set: name one node of the cluster$/,
    ],
    [
      { REDIS_CLUSTER: 'true', REDIS_URL: 'redis://:secret@node-1:7000/3' },
      /^REDIS_URL must not select a database with REDIS_CLUSTER=true: a Redis Cluster has only database 0$/,
    ],
    [{ ALLOWED_ORIGINS: ' , ' }, /^ALLOWED_ORIGINS lists no origin/],
    [
      { ALLOWED_ORIGINS: 'https://a.example/app' },
      /^ALLOWED_ORIGINS entry "https:\/\/a.example\/app" is not an origin/,
    ],
    [{ ALLOWED_ORIGINS: '*' }, /^ALLOWED_ORIGINS cannot allow "\*"/],
    [{ ALLOWED_ORIGINS: 'null' }, /^ALLOWED_ORIGINS cannot allow "null"/],
    [
      { ALLOWED_ORIGINS: 'ftp://a.example' },
      /^ALLOWED_ORIGINS entry "ftp:\/\/a.example" is not an origin/,
    ],
    [
      { TOKEN_TTL: 'forever' },
      /^TOKEN_TTL must be a duration such as 30d, 12h, 90m or 45s, or "none" \(got "forever"\)$/,
    ],
    [{ TOKEN_TTL: '0s' }, /^TOKEN_TTL must be a duration/],
    [
      { JWT_SECRET: GOOD_SECRET, JWT_JWKS_URL: 'https://a.example/jwks' },
      /^JWT_SECRET and JWT_JWKS_URL are exclusive/,
    ],
    [{ JWT_JWKS_URL: 'http://auth.example.com/jwks' }, /^JWT_JWKS_URL must be an https:\/\/ URL/],
    [{ JWT_JWKS_URL: 'not a url' }, /^JWT_JWKS_URL must be an https:\/\/ URL/],
    [{ JWT_ISSUER: 'https://auth.example.com/' }, /^JWT_ISSUER is set but JWTs are not accepted/],
    [{ JWT_AUDIENCE: 'chat' }, /^JWT_AUDIENCE is set but JWTs are not accepted/],
    [
      { ENABLE_QUERY_TOKEN: 'maybe' },
      /^ENABLE_QUERY_TOKEN must be true, false, 1, 0, yes or no \(got "maybe"\)$/,
    ],
    [
      { LOG_LEVEL: 'verbose' },
      /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent \(got "verbose"\)$/,
    ],
  ];
  for (const [env, expected] of cases) {
    it(`${JSON.stringify(env)}`, () => {
      assert.match(configError({ env }), expected);
    });
  }

  it('names the flag for a bad flag', () => {
    assert.match(configError({ env: {}, flags: { port: '80x' } }), /^--port must be an integer/);
    assert.match(configError({ env: {}, flags: { host: 'a b' } }), /^--host must be/);
    assert.match(
      configError({ env: { REDIS_URL: 'redis://r' }, flags: { workers: '0' } }),
      /^--workers must be an integer from 1 to 64 \(got "0"\)$/,
    );
  });

  it('needs REDIS_URL for more than one worker', () => {
    assert.match(configError({ env: {}, flags: { workers: 2 } }), /^--workers 2 needs REDIS_URL/);
  });

  it('names the file and key for a bad file value', () => {
    const file = configFile({ port: 'abc' });
    assert.equal(
      configError({ env: {}, file }),
      `port in ${file} must be an integer from 0 to 65535 (got "abc")`,
    );
    const typed = configFile({ enableQueryToken: 3 });
    assert.match(
      configError({ env: {}, file: typed }),
      /^enableQueryToken in .* must be a boolean or a string$/,
    );
  });

  it('refuses an unreadable, malformed or ambiguous file', () => {
    assert.match(
      configError({ env: {}, file: join(dir, 'missing.json') }),
      /^--config names a file that cannot be read: .*missing\.json \(ENOENT\)$/,
    );
    assert.match(
      configError({ env: { PORTCULLIS_CONFIG: join(dir, 'missing.json') } }),
      /^PORTCULLIS_CONFIG names a file that cannot be read/,
    );
    assert.match(
      configError({ env: {}, file: configFile('[1, 2]') }),
      /must hold one JSON object$/,
    );
    assert.match(
      configError({ env: {}, file: configFile({ prot: 80 }) }),
      /has unknown key "prot"/,
    );
    assert.match(
      configError({ env: {}, file: configFile({ port: 1, PORT: 2 }) }),
      /sets PORT twice/,
    );
  });
});

describe('loadConfig never repeats a secret', () => {
  const secret = 'hunter2-hunter2';
  const cases: [string, Record<string, string>][] = [
    ['a short JWT_SECRET', { JWT_SECRET: secret }],
    ['a short PUBLISH_API_KEY', { PUBLISH_API_KEY: 'hunter2' }],
    ['a PUBLISH_API_KEY with spaces', { PUBLISH_API_KEY: `${secret} ${secret}` }],
    ['a DATABASE_URL with a password', { DATABASE_URL: `mysql://app:${secret}@db/app` }],
    ['a REDIS_URL with a password', { REDIS_URL: `http://:${secret}@cache:6379` }],
  ];
  for (const [name, env] of cases) {
    it(name, () => {
      const message = configError({ env });
      assert.ok(!message.includes('hunter2'), message);
      assert.match(message, new RegExp(`^${Object.keys(env)[0]} `));
    });
  }

  it('in a config file that is not valid JSON', () => {
    const file = configFile(`{"jwtSecret": "${secret}`);
    const message = configError({ env: {}, file });
    assert.ok(!message.includes('hunter2'), message);
    assert.match(message, /is not valid JSON/);
  });

  it('says how long a short JWT secret is and how to make one', () => {
    assert.equal(
      configError({ env: { JWT_SECRET: 'x'.repeat(31) } }),
      'JWT_SECRET must be at least 32 bytes (it has 31); generate one with: openssl rand -base64 48',
    );
    assert.equal(loadConfig({ env: { JWT_SECRET: GOOD_SECRET } }).jwt.secret, GOOD_SECRET);
  });
});

describe('allowed origins', () => {
  it('default to the own origin plus localhost names on a loopback host', () => {
    assert.deepEqual(defaultAllowedOrigins('127.0.0.1', 8000), [
      'http://127.0.0.1:8000',
      'http://localhost:8000',
    ]);
    assert.deepEqual(defaultAllowedOrigins('localhost', 8001), [
      'http://localhost:8001',
      'http://127.0.0.1:8001',
    ]);
    assert.deepEqual(defaultAllowedOrigins('::1', 8002), [
      'http://[::1]:8002',
      'http://localhost:8002',
      'http://127.0.0.1:8002',
    ]);
    assert.deepEqual(defaultAllowedOrigins('0.0.0.0', 8003), [
      'http://0.0.0.0:8003',
      'http://localhost:8003',
      'http://127.0.0.1:8003',
    ]);
  });

  it('default to the own origin alone on another host', () => {
    assert.deepEqual(defaultAllowedOrigins('10.0.0.5', 8000), ['http://10.0.0.5:8000']);
    assert.deepEqual(defaultAllowedOrigins('chat.example.com', 80), ['http://chat.example.com:80']);
  });

  it('follow HOST and PORT', () => {
    const config = loadConfig({ env: { HOST: 'localhost', PORT: '9100' } });
    assert.deepEqual(config.allowedOrigins, ['http://localhost:9100', 'http://127.0.0.1:9100']);
  });

  it('are normalised as browsers send them, deduplicated', () => {
    const config = loadConfig({
      env: {
        ALLOWED_ORIGINS:
          'https://Chat.Example.com:443/,https://chat.example.com,http://localhost:3000',
      },
    });
    assert.deepEqual(config.allowedOrigins, ['https://chat.example.com', 'http://localhost:3000']);
  });
});

describe('durations', () => {
  it('parse one unit or none', () => {
    assert.equal(parseDuration('45s'), 45_000);
    assert.equal(parseDuration('90m'), 90 * 60_000);
    assert.equal(parseDuration('12h'), 12 * HOUR);
    assert.equal(parseDuration('30d'), 30 * DAY);
    assert.equal(parseDuration(' 1h '), HOUR);
    assert.equal(parseDuration('none'), null);
    assert.equal(parseDuration('NONE'), null);
  });

  it('refuse anything else', () => {
    for (const text of [
      '',
      '0s',
      '1',
      'h',
      '1.5h',
      '-1h',
      '1h30m',
      '1w',
      '10 d',
      '01h',
      'infinity',
    ]) {
      assert.equal(parseDuration(text), undefined, text);
    }
  });

  it('stop at 100 years', () => {
    assert.equal(parseDuration('36500d'), MAX_DURATION_MS);
    assert.equal(parseDuration('36501d'), undefined);
    assert.equal(parseDuration('9999999999d'), undefined);
  });

  it('format back in the largest exact unit', () => {
    assert.equal(formatDuration(30 * DAY), '30d');
    assert.equal(formatDuration(90 * 60_000), '90m');
    assert.equal(formatDuration(36 * HOUR), '36h');
    assert.equal(formatDuration(45_000), '45s');
    assert.equal(formatDuration(1_500), '1500ms');
    assert.equal(formatDuration(null), 'none');
  });

  it('set TOKEN_TTL', () => {
    assert.equal(loadConfig({ env: { TOKEN_TTL: '90m' } }).tokenTtlMs, 90 * 60_000);
    assert.equal(loadConfig({ env: { TOKEN_TTL: 'none' } }).tokenTtlMs, null);
  });
});

describe('PRESENCE_TTL', () => {
  it('defaults to 30 s and takes durations from 1 s to 1 h, in one line otherwise', () => {
    assert.equal(loadConfig({ env: {} }).presenceTtlMs, 30_000);
    assert.equal(loadConfig({ env: { PRESENCE_TTL: '2s' } }).presenceTtlMs, 2_000);
    for (const bad of ['0s', 'none', '2h', 'soon']) {
      assert.throws(
        () => loadConfig({ env: { PRESENCE_TTL: bad } }),
        (error: Error) => {
          assert.match(error.message, /^PRESENCE_TTL must be a duration from 1s to 1h/);
          assert.equal(error.message.includes('\n'), false);
          return true;
        },
      );
    }
  });
});
