/**
 * The Django mode settings of the gateway (SPEC §8, §11), read from the same sources as
 * the rest of its configuration and named after what they copy from Django's
 * `settings.py`: `SECRET_KEY`, `SIMPLE_JWT`, `SESSION_COOKIE_NAME`, `SESSION_COOKIE_AGE`,
 * `AUTH_USER_MODEL`'s table and `CHANNEL_LAYERS`' prefix.
 *
 * @module
 */
import { ConfigError } from '../errors.js';
import type { JwtAlgorithm } from '../auth/authenticators/jwt.js';
import { parseDuration } from './durations.js';

/** SimpleJWT's settings as far as verifying an access token needs them (`SIMPLE_JWT`). */
export interface GatewaySimpleJwtConfig {
  /** `ALGORITHM` @default 'HS256' */
  readonly algorithm: JwtAlgorithm;
  /** `VERIFYING_KEY` (a PEM public key) for RS/ES algorithms; `null` for HS*. */
  readonly verifyingKey: string | null;
  /** `AUDIENCE` */
  readonly audience: string | readonly string[] | null;
  /** `ISSUER` */
  readonly issuer: string | null;
  /** `LEEWAY`, seconds. @default 0 */
  readonly leeway: number;
  /** `USER_ID_FIELD` @default 'id' */
  readonly userIdField: string;
  /** `USER_ID_CLAIM` @default 'user_id' */
  readonly userIdClaim: string;
  /** `TOKEN_TYPE_CLAIM` @default 'token_type' */
  readonly tokenTypeClaim: string;
  /** `JTI_CLAIM`; `null` requires none. @default 'jti' */
  readonly jtiClaim: string | null;
  /** The token types of `AUTH_TOKEN_CLASSES`. @default ['access'] */
  readonly tokenTypes: readonly string[];
}

/** Django mode (SPEC §11): on when `DJANGO_DATABASE_URL` is set. */
export interface GatewayDjangoConfig {
  /** `DJANGO_DATABASE_URL`: the Django app's database, opened read-only. */
  readonly databaseUrl: string;
  /**
   * `DJANGO_SECRET_KEY`: `SECRET_KEY`, which signs sessions (and by default SimpleJWT
   * tokens). `null`: sessions are not accepted.
   */
  readonly secretKey: string | null;
  /**
   * `DJANGO_JWT_SIGNING_KEY`: `SIMPLE_JWT["SIGNING_KEY"]` when it is not the secret key.
   * `null`: the secret key.
   */
  readonly jwtSigningKey: string | null;
  /** `DJANGO_SIMPLE_JWT`: a JSON object of `SIMPLE_JWT` keys (see {@link GatewaySimpleJwtConfig}). */
  readonly simpleJwt: GatewaySimpleJwtConfig;
  /** `DJANGO_SESSION_COOKIE`: `SESSION_COOKIE_NAME`. @default 'sessionid' */
  readonly sessionCookie: string;
  /** `DJANGO_SESSION_COOKIE_AGE`: `SESSION_COOKIE_AGE` in seconds (signed-cookie sessions). @default 1209600 */
  readonly sessionCookieAge: number;
  /** `DJANGO_REVALIDATE_INTERVAL`: how often live Django credentials are re-checked. @default 5000 */
  readonly revalidateIntervalMs: number;
  /** `DJANGO_USER_TABLE`: the table of `AUTH_USER_MODEL`. @default 'auth_user' */
  readonly userTable: string;
  /**
   * `DJANGO_ROOM_TABLE`: the MultiChat room table (`id`, `title`, `staff_only`). `null`:
   * found by its shape (`chat_room` first), or Portcullis's own rooms when there is none.
   */
  readonly roomTable: string | null;
  /**
   * `CHANNELS_REDIS_PREFIX`: `CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]`; with
   * `REDIS_URL`, MultiChat speaks channels_redis's wire format under it.
   * @default 'asgi'
   */
  readonly channelsRedisPrefix: string;
}

/** The environment names Django mode reads. */
export const DJANGO_ENV_NAMES = [
  'DJANGO_DATABASE_URL',
  'DJANGO_SECRET_KEY',
  'DJANGO_JWT_SIGNING_KEY',
  'DJANGO_SIMPLE_JWT',
  'DJANGO_SESSION_COOKIE',
  'DJANGO_SESSION_COOKIE_AGE',
  'DJANGO_REVALIDATE_INTERVAL',
  'DJANGO_USER_TABLE',
  'DJANGO_ROOM_TABLE',
  'CHANNELS_REDIS_PREFIX',
] as const;

export type DjangoEnvName = (typeof DJANGO_ENV_NAMES)[number];

/** @internal A configured value and the name, flag or file key it came from. */
export interface RawSetting {
  readonly value: string;
  readonly label: string;
}

/** @internal What {@link readDjangoConfig} needs from the config loader. */
export interface DjangoSettingsSource {
  pick(name: DjangoEnvName): RawSetting | undefined;
  /** Validates a database URL the way `DATABASE_URL` is, naming `raw.label`. */
  databaseUrl(raw: RawSetting): string;
  /** Quotes a rejected non-secret value for a message. */
  shown(value: string): string;
}

const ALGORITHMS: readonly JwtAlgorithm[] = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
];
const TOKEN_CLASSES: Readonly<Record<string, string>> = {
  'rest_framework_simplejwt.tokens.AccessToken': 'access',
  'rest_framework_simplejwt.tokens.SlidingToken': 'sliding',
};
const SIMPLE_JWT_KEYS = [
  'ALGORITHM',
  'VERIFYING_KEY',
  'AUDIENCE',
  'ISSUER',
  'LEEWAY',
  'USER_ID_FIELD',
  'USER_ID_CLAIM',
  'TOKEN_TYPE_CLAIM',
  'JTI_CLAIM',
  'AUTH_TOKEN_CLASSES',
] as const;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/; // RFC 6265 token
const DEFAULT_COOKIE_AGE = 1_209_600; // 2 weeks, in seconds
const DEFAULT_REVALIDATE_MS = 5_000;
const MAX_REVALIDATE_MS = 3_600_000;

/** The JSON of `DJANGO_SIMPLE_JWT` as the config file may give it: an object. */
export function simpleJwtFileValue(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? JSON.stringify(value)
    : undefined;
}

function simpleJwtSettings(raw: RawSetting | undefined): GatewaySimpleJwtConfig {
  let settings: Record<string, unknown> = {};
  if (raw !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.value);
    } catch {
      throw new ConfigError(
        `${raw.label} must be a JSON object of SIMPLE_JWT settings, e.g. {"ALGORITHM":"HS512","USER_ID_CLAIM":"uid"}`,
      );
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`${raw.label} must be a JSON object of SIMPLE_JWT settings`);
    }
    settings = parsed as Record<string, unknown>;
    for (const key of Object.keys(settings)) {
      if (key === 'SIGNING_KEY') {
        throw new ConfigError(
          `${raw.label} must not hold SIGNING_KEY: set DJANGO_JWT_SIGNING_KEY (a secret stays out of JSON settings)`,
        );
      }
      if (!(SIMPLE_JWT_KEYS as readonly string[]).includes(key)) {
        throw new ConfigError(
          `${raw.label} has unknown key ${JSON.stringify(key.slice(0, 40))}; known: ${SIMPLE_JWT_KEYS.join(', ')}`,
        );
      }
    }
  }
  const label = raw?.label ?? 'DJANGO_SIMPLE_JWT';
  const text = (key: string, fallback: string, pattern?: RegExp): string => {
    const value = settings[key] ?? fallback;
    if (typeof value !== 'string' || value === '' || (pattern && !pattern.test(value))) {
      throw new ConfigError(`${label}: ${key} must be a ${pattern ? 'name' : 'non-empty string'}`);
    }
    return value;
  };
  const optionalText = (key: string): string | null => {
    const value = settings[key] ?? null;
    if (value === null) return null;
    if (typeof value !== 'string' || value === '') {
      throw new ConfigError(`${label}: ${key} must be a non-empty string or null`);
    }
    return value;
  };

  const algorithm = text('ALGORITHM', 'HS256');
  const known = ALGORITHMS.find((candidate) => candidate === algorithm);
  if (known === undefined) {
    throw new ConfigError(`${label}: ALGORITHM must be one of ${ALGORITHMS.join(', ')}`);
  }
  const verifyingKey = optionalText('VERIFYING_KEY');
  if (known.startsWith('HS') !== (verifyingKey === null)) {
    throw new ConfigError(
      known.startsWith('HS')
        ? `${label}: VERIFYING_KEY is for RS*/ES* algorithms; ${known} uses the signing key`
        : `${label}: ALGORITHM ${known} needs VERIFYING_KEY (the PEM public key)`,
    );
  }
  const audienceValue = settings['AUDIENCE'] ?? null;
  let audience: string | readonly string[] | null;
  if (audienceValue === null || typeof audienceValue === 'string') {
    audience = audienceValue === '' ? null : audienceValue;
  } else if (
    Array.isArray(audienceValue) &&
    audienceValue.length > 0 &&
    audienceValue.every((entry) => typeof entry === 'string' && entry !== '')
  ) {
    audience = Object.freeze([...(audienceValue as string[])]);
  } else {
    throw new ConfigError(`${label}: AUDIENCE must be a string, a list of strings or null`);
  }
  const leeway = settings['LEEWAY'] ?? 0;
  if (typeof leeway !== 'number' || !Number.isFinite(leeway) || leeway < 0) {
    throw new ConfigError(`${label}: LEEWAY must be a non-negative number of seconds`);
  }
  const classes = settings['AUTH_TOKEN_CLASSES'] ?? ['rest_framework_simplejwt.tokens.AccessToken'];
  const tokenTypes =
    Array.isArray(classes) && classes.length > 0
      ? classes.map((name: unknown) => (typeof name === 'string' ? TOKEN_CLASSES[name] : undefined))
      : [undefined];
  if (tokenTypes.some((type) => type === undefined)) {
    throw new ConfigError(
      `${label}: AUTH_TOKEN_CLASSES must list ${Object.keys(TOKEN_CLASSES).join(' and/or ')}`,
    );
  }
  const jti = settings['JTI_CLAIM'] === undefined ? 'jti' : optionalText('JTI_CLAIM');
  return Object.freeze({
    algorithm: known,
    verifyingKey,
    audience,
    issuer: optionalText('ISSUER'),
    leeway,
    userIdField: text('USER_ID_FIELD', 'id', IDENTIFIER),
    userIdClaim: text('USER_ID_CLAIM', 'user_id'),
    tokenTypeClaim: text('TOKEN_TYPE_CLAIM', 'token_type'),
    jtiClaim: jti,
    tokenTypes: Object.freeze(tokenTypes as string[]),
  });
}

function secret(raw: RawSetting | undefined): string | null {
  if (raw === undefined) return null;
  if (raw.value.trim() === '') throw new ConfigError(`${raw.label} must not be blank`);
  return raw.value;
}

function tableName(
  raw: RawSetting | undefined,
  fallback: string,
  source: DjangoSettingsSource,
): string {
  if (raw === undefined) return fallback;
  const value = raw.value.trim();
  if (!IDENTIFIER.test(value)) {
    throw new ConfigError(
      `${raw.label} must be a table name (letters, digits, _) (got ${source.shown(raw.value)})`,
    );
  }
  return value;
}

/**
 * Reads the Django mode settings, or `null` when `DJANGO_DATABASE_URL` is not set (and
 * then no other Django setting may be).
 *
 * @throws {ConfigError} one line naming the setting at fault; secrets are never repeated.
 */
export function readDjangoConfig(
  source: DjangoSettingsSource,
  context: { readonly redis: boolean; readonly jwtLabel: string | null },
): GatewayDjangoConfig | null {
  const { pick, shown } = source;
  const databaseRaw = pick('DJANGO_DATABASE_URL');
  if (databaseRaw === undefined) {
    const orphan = DJANGO_ENV_NAMES.map((name) => pick(name)).find((raw) => raw !== undefined);
    if (orphan !== undefined) {
      throw new ConfigError(
        `${orphan.label} is set but Django mode is off: set DJANGO_DATABASE_URL to the Django app's database`,
      );
    }
    return null;
  }
  if (context.jwtLabel !== null) {
    throw new ConfigError(
      `${context.jwtLabel} and DJANGO_DATABASE_URL are exclusive: in Django mode JWTs are SimpleJWT's (DJANGO_JWT_SIGNING_KEY, DJANGO_SIMPLE_JWT)`,
    );
  }
  const prefixRaw = pick('CHANNELS_REDIS_PREFIX');
  if (prefixRaw !== undefined && !context.redis) {
    throw new ConfigError(`${prefixRaw.label} needs REDIS_URL (the channels_redis server)`);
  }
  const prefix = prefixRaw?.value ?? 'asgi';
  if (!/^[\x21-\x7e]{1,100}$/.test(prefix)) {
    throw new ConfigError(
      `${prefixRaw?.label ?? 'CHANNELS_REDIS_PREFIX'} must be 1 to 100 printable characters without spaces (got ${shown(prefix)})`,
    );
  }
  const cookieRaw = pick('DJANGO_SESSION_COOKIE');
  const sessionCookie = cookieRaw?.value.trim() ?? 'sessionid';
  if (!COOKIE_NAME.test(sessionCookie)) {
    throw new ConfigError(
      `${cookieRaw?.label ?? 'DJANGO_SESSION_COOKIE'} must be a cookie name (got ${shown(sessionCookie)})`,
    );
  }
  const ageRaw = pick('DJANGO_SESSION_COOKIE_AGE');
  const age = ageRaw === undefined ? DEFAULT_COOKIE_AGE : Number(ageRaw.value.trim());
  if (ageRaw !== undefined && !(/^[1-9][0-9]{0,9}$/.test(ageRaw.value.trim()) && age >= 1)) {
    throw new ConfigError(
      `${ageRaw.label} must be SESSION_COOKIE_AGE: a whole number of seconds (got ${shown(ageRaw.value)})`,
    );
  }
  const intervalRaw = pick('DJANGO_REVALIDATE_INTERVAL');
  let revalidateIntervalMs = DEFAULT_REVALIDATE_MS;
  if (intervalRaw !== undefined) {
    const ms = parseDuration(intervalRaw.value);
    if (ms === undefined || ms === null || ms > MAX_REVALIDATE_MS) {
      throw new ConfigError(
        `${intervalRaw.label} must be a duration from 1s to 1h, e.g. 5s (got ${shown(intervalRaw.value)})`,
      );
    }
    revalidateIntervalMs = ms;
  }
  return Object.freeze({
    databaseUrl: source.databaseUrl(databaseRaw),
    secretKey: secret(pick('DJANGO_SECRET_KEY')),
    jwtSigningKey: secret(pick('DJANGO_JWT_SIGNING_KEY')),
    simpleJwt: simpleJwtSettings(pick('DJANGO_SIMPLE_JWT')),
    sessionCookie,
    sessionCookieAge: age,
    revalidateIntervalMs,
    userTable: tableName(pick('DJANGO_USER_TABLE'), 'auth_user', source),
    roomTable:
      pick('DJANGO_ROOM_TABLE') === undefined
        ? null
        : tableName(pick('DJANGO_ROOM_TABLE'), '', source),
    channelsRedisPrefix: prefix,
  });
}
