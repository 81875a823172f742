/**
 * Gateway configuration (SPEC §8): command-line flags, then the environment, then an
 * optional JSON file, then defaults; validated in one place so that every problem is one
 * line naming the variable, and a secret's value is never repeated.
 *
 * The config file (`--config FILE` or `PORTCULLIS_CONFIG=FILE`) is one JSON object whose
 * keys are the environment names (`"PORT"`) or their camelCase forms (`"port"`):
 *
 * ```json
 * { "port": 8080, "databaseUrl": "postgres://app@db/app", "allowedOrigins": ["https://chat.example.com"] }
 * ```
 *
 * Values are strings as in the environment, or JSON's natural types where they fit: a
 * number for `port`, an array for `allowedOrigins`, a boolean for `enableQueryToken`;
 * `null` is the same as leaving the key out. Unknown keys are errors, so a typo is not
 * silently ignored. An empty environment variable counts as unset, as in most
 * deployment tools.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { isValidPrefix } from '../layers/redis/options.js';
import { normalizeOrigin } from '../middleware/origin.js';
import { parseDatabaseUrl } from '../store/database.js';
import { DEFAULT_TOKEN_TTL_MS } from '../auth/accounts.js';
import { DURATION_HINT, parseDuration } from './durations.js';
import { DJANGO_ENV_NAMES, readDjangoConfig, simpleJwtFileValue } from './django-config.js';
import type { GatewayDjangoConfig } from './django-config.js';

/** pino's levels; `silent` logs nothing. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * JWT verification (SPEC §3). With neither `secret` nor `jwksUrl`, JWTs are not accepted
 * at all; with one, they are verified as `jwtAuthenticator` describes.
 */
export interface GatewayJwtConfig {
  /** `JWT_SECRET`: the HS256 shared secret, at least 32 bytes. Exclusive with `jwksUrl`. */
  readonly secret: string | null;
  /**
   * `JWT_JWKS_URL`: where the issuer publishes its public keys (RS256, ES256, EdDSA).
   * `https:` only, except `http:` on a loopback host for development. Exclusive with
   * `secret`.
   */
  readonly jwksUrl: string | null;
  /** `JWT_ISSUER`: the required `iss` claim; `null` does not check it. */
  readonly issuer: string | null;
  /** `JWT_AUDIENCE`: the required `aud` claim; `null` does not check it. */
  readonly audience: string | null;
}

/** The validated configuration `portcullis serve` runs with. Frozen. */
export interface GatewayConfig {
  /**
   * `PORT`, `--port`: the TCP port, 0 to 65535; 0 lets the system pick one.
   * @default 8000
   */
  readonly port: number;
  /**
   * `HOST`, `--host`: the address to bind, an IP address or a host name. Use `0.0.0.0`
   * or `::` to listen on every interface.
   * @default '127.0.0.1'
   */
  readonly host: string;
  /**
   * `DATABASE_URL`: `sqlite:PATH` (the embedded default, migrated on start),
   * `sqlite::memory:` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
   * @default 'sqlite:./portcullis.db'
   */
  readonly databaseUrl: string;
  /**
   * `REDIS_URL`: `redis://` or `rediss://`; sockets on every process sharing it see each
   * other's groups and revocations. `null`: an in-process layer, one process only.
   * @default null
   */
  readonly redisUrl: string | null;
  /**
   * `REDIS_PREFIX`: starts every Redis key and pub/sub channel of this deployment
   * (channel layer, presence, revocations), so deployments sharing one Redis never see
   * each other's traffic (SPEC §12). 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
   * @default 'portcullis'
   */
  readonly redisPrefix: string;
  /**
   * `REDIS_CLUSTER`: `REDIS_URL` names one node of a Redis Cluster (SPEC §8).
   * @default false
   */
  readonly redisCluster: boolean;
  /**
   * `ALLOWED_ORIGINS`: the origins (`scheme://host[:port]`, comma-separated) whose
   * browsers may open cookie-authenticated sockets (SPEC §3); others close 4403.
   * @default the gateway's own origin `http://HOST:PORT`, plus `http://localhost:PORT`
   *   and `http://127.0.0.1:PORT` when HOST is a loopback or wildcard address; see
   *   {@link defaultAllowedOrigins}
   */
  readonly allowedOrigins: readonly string[];
  /**
   * True when `allowedOrigins` are the defaults rather than `ALLOWED_ORIGINS`: a gateway
   * bound to port 0 should recompute them for the port it got.
   */
  readonly defaultOrigins: boolean;
  /**
   * `TOKEN_TTL`: lifetime of new tokens in milliseconds, from `30d`, `12h`, `90m`,
   * `45s`; `none` (`null`) for tokens that never expire.
   * @default 2592000000 (30 days)
   */
  readonly tokenTtlMs: number | null;
  /**
   * `PRESENCE_TTL`: how long a gateway process may go silent before its room members
   * are taken as gone (its heartbeat runs every third of it). Only with `REDIS_URL`.
   * @default 30000 (30 s)
   */
  readonly presenceTtlMs: number;
  /** `JWT_SECRET`, `JWT_JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`. */
  readonly jwt: GatewayJwtConfig;
  /**
   * `MAX_CONNECTIONS_PER_USER`: open sockets allowed per user (source and id) on one
   * process; past it 4429 `too many connections`. `0`: no limit; `--bench` lifts it.
   * @default 32
   */
  readonly maxConnectionsPerUser: number;
  /**
   * `MAX_CONNECTIONS_PER_ADDRESS`: open sockets allowed per client address on one
   * process (4429). `0`: no limit; `--bench` lifts it.
   * @default 256
   */
  readonly maxConnectionsPerAddress: number;
  /**
   * `HANDSHAKE_REFUSAL`: refuse bad or missing credentials at the HTTP handshake (401
   * with `WWW-Authenticate`, 403 for a refused origin) instead of accepting and closing
   * with a code (SPEC §5).
   * @default false
   */
  readonly handshakeRefusal: boolean;
  /**
   * `PUBLISH_API_KEY`: the bearer key of `POST /api/publish`, at least 16 printable
   * ASCII characters. `null`: the publish API answers 403.
   * @default null
   */
  readonly publishApiKey: string | null;
  /**
   * `ENABLE_QUERY_TOKEN`: accept `?token=` on WebSocket URLs (SPEC §3; off because URLs
   * end up in proxy logs and browser history). `true`/`false`, `1`/`0`, `yes`/`no`.
   * @default false
   */
  readonly enableQueryToken: boolean;
  /**
   * `LOG_LEVEL`: one of pino's levels.
   * @default 'info'
   */
  readonly logLevel: LogLevel;
  /**
   * `--bench`: serve `/ws/bench/` (SPEC §9).
   * @default false
   */
  readonly bench: boolean;
  /**
   * `--workers N`: gateway processes sharing the port (1 to 64). More than one needs
   * `REDIS_URL`, the only way processes share groups and revocations.
   * @default 1
   */
  readonly workers: number;
  /** The config file that was read, as given; `null` when none was. */
  readonly configFile: string | null;
  /** Django mode (SPEC §11), from `DJANGO_DATABASE_URL` and its companions; `null` when off. */
  readonly django: GatewayDjangoConfig | null;
}

/** Flags of `portcullis serve`: strings as typed on the command line, or parsed values. */
export interface ConfigFlags {
  /** `--port N` */
  readonly port?: string | number;
  /** `--host H` */
  readonly host?: string;
  /** `--bench` */
  readonly bench?: boolean;
  /** `--workers N` */
  readonly workers?: string | number;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** @default {} */
  readonly flags?: ConfigFlags;
  /** A JSON config file (`--config FILE`); takes the place of `PORTCULLIS_CONFIG`. */
  readonly file?: string;
}

const ENV_NAMES = [
  'PORT',
  'HOST',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_PREFIX',
  'REDIS_CLUSTER',
  'ALLOWED_ORIGINS',
  'TOKEN_TTL',
  'JWT_SECRET',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'PUBLISH_API_KEY',
  'ENABLE_QUERY_TOKEN',
  'LOG_LEVEL',
  'PRESENCE_TTL',
  'MAX_CONNECTIONS_PER_USER',
  'MAX_CONNECTIONS_PER_ADDRESS',
  'HANDSHAKE_REFUSAL',
  ...DJANGO_ENV_NAMES,
] as const;

type EnvName = (typeof ENV_NAMES)[number];

/**
 * Sockets one user may hold on one process: enough for every tab and device of a person,
 * few enough that one stolen credential cannot hold thousands (issue 16: 60 were let in).
 */
const DEFAULT_MAX_CONNECTIONS_PER_USER = 32;
/** Sockets per client address: a household or office behind one NAT fits under it. */
const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;

const FLAG_OF: Partial<Record<EnvName, 'port' | 'host'>> = { PORT: 'port', HOST: 'host' };

const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no']);

const DEFAULT_PORT = 8000;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_DATABASE_URL = 'sqlite:./portcullis.db';
const MIN_JWT_SECRET_BYTES = 32; // RFC 7518 §3.2: an HS256 key at least as long as the hash
const MIN_PUBLISH_KEY_LENGTH = 16;
const MAX_WORKERS = 64;

/** A configured value and where it came from, so an error names what the user wrote. */
interface Raw {
  readonly value: string;
  /** `PORT`, `--port` or `port in ./portcullis.json` */
  readonly label: string;
}

function camelCase(name: EnvName): string {
  return name.toLowerCase().replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** How a rejected non-secret value is shown: quoted, on one line, never very long. */
function shown(value: string): string {
  const quoted = JSON.stringify(value);
  return quoted.length > 80 ? `${quoted.slice(0, 76)}..."` : quoted;
}

function readConfigFile(path: string, via: string): Map<EnvName, Raw> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`${via} names a file that cannot be read: ${path} (${code})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // V8's message can quote the file's text, which may hold a secret: keep the position only.
    const at = /position (\d+)/.exec(String(error))?.[1];
    throw new ConfigError(
      `config file ${path} is not valid JSON${at === undefined ? '' : ` (at position ${at})`}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold one JSON object`);
  }
  const byKey = new Map<string, EnvName>();
  for (const name of ENV_NAMES) {
    byKey.set(name, name);
    byKey.set(camelCase(name), name);
  }
  const values = new Map<EnvName, Raw>();
  for (const [key, value] of Object.entries(parsed)) {
    const name = byKey.get(key);
    if (name === undefined) {
      throw new ConfigError(
        `config file ${path} has unknown key ${shown(key)}; known keys: ${ENV_NAMES.map(camelCase).join(', ')}`,
      );
    }
    const label = `${key} in ${path}`;
    if (values.has(name)) {
      throw new ConfigError(
        `config file ${path} sets ${name} twice (as ${name} and ${camelCase(name)})`,
      );
    }
    if (value === null) continue;
    values.set(name, { value: fileValue(name, value, label), label });
  }
  return values;
}

/** JSON's natural type for a key, as the string the environment would hold. */
function fileValue(name: EnvName, value: unknown, label: string): string {
  if (typeof value === 'string') return value;
  if (name === 'PORT' && typeof value === 'number') return String(value);
  if (name === 'ENABLE_QUERY_TOKEN' && typeof value === 'boolean') return String(value);
  if (name === 'DJANGO_SESSION_COOKIE_AGE' && typeof value === 'number') return String(value);
  if (name === 'DJANGO_SIMPLE_JWT') {
    const json = simpleJwtFileValue(value);
    if (json !== undefined) return json;
  }
  if (
    name === 'ALLOWED_ORIGINS' &&
    Array.isArray(value) &&
    value.every((entry): entry is string => typeof entry === 'string')
  ) {
    if (value.some((entry) => entry.includes(','))) {
      throw new ConfigError(`${label} must list one origin per array entry`);
    }
    return value.join(',');
  }
  const expected =
    name === 'PORT'
      ? 'a number or a string'
      : name === 'ENABLE_QUERY_TOKEN'
        ? 'a boolean or a string'
        : name === 'ALLOWED_ORIGINS'
          ? 'an array of strings or a string'
          : name === 'DJANGO_SIMPLE_JWT'
            ? 'an object or a string'
            : 'a string';
  throw new ConfigError(`${label} must be ${expected}`);
}

function integer(raw: Raw, min: number, max: number): number {
  const value = raw.value.trim();
  const parsed = /^[0-9]{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(parsed >= min && parsed <= max)) {
    throw new ConfigError(
      `${raw.label} must be an integer from ${min} to ${max} (got ${shown(raw.value)})`,
    );
  }
  return parsed;
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function host(raw: Raw): string {
  let value = raw.value.trim();
  // `[::1]` is how people write IPv6 next to a port; the socket API wants it bare.
  if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
  // All digits and dots is a mistyped IPv4 address, never a host name (RFC 1123 §2.1).
  if (isIP(value) === 0 && (!HOST_NAME.test(value) || /^[0-9.]+$/.test(value))) {
    throw new ConfigError(
      `${raw.label} must be an IP address or a host name (got ${shown(raw.value)})`,
    );
  }
  return value;
}

function isLoopback(address: string): boolean {
  const lower = address.toLowerCase();
  if (lower === 'localhost' || lower === '::1') return true;
  return isIP(lower) === 4 && lower.startsWith('127.');
}

/** `0.0.0.0` and `::` listen on every interface, loopback included. */
function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/**
 * The allow-list used when `ALLOWED_ORIGINS` is not set (SPEC §3): the gateway's own
 * origin, plus `http://localhost:PORT` and `http://127.0.0.1:PORT` when it listens on a
 * loopback or wildcard address, since browsers on the same machine reach it by either
 * name. A gateway behind a public host name needs `ALLOWED_ORIGINS`.
 *
 * @example
 * ```ts
 * defaultAllowedOrigins('127.0.0.1', 8000);
 * // ['http://127.0.0.1:8000', 'http://localhost:8000']
 * ```
 */
export function defaultAllowedOrigins(host: string, port: number): string[] {
  const own = `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const origins = [own];
  if (isLoopback(host) || isWildcard(host)) {
    origins.push(`http://localhost:${port}`, `http://127.0.0.1:${port}`);
  }
  return [...new Set(origins)];
}

function origins(raw: Raw): string[] {
  const entries = raw.value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) {
    throw new ConfigError(`${raw.label} lists no origin; leave it unset for the defaults`);
  }
  const result: string[] = [];
  for (const entry of entries) {
    if (entry === '*' || entry === 'null') {
      throw new ConfigError(
        `${raw.label} cannot allow ${shown(entry)}: list each origin (scheme://host[:port])`,
      );
    }
    const normalized = normalizeOrigin(entry);
    const url = URL.canParse(entry) ? new URL(entry) : undefined;
    // A path, query or credentials is a misunderstanding: browsers send only scheme, host, port.
    if (
      normalized === undefined ||
      url === undefined ||
      !(url.pathname === '/' || url.pathname === '') ||
      url.search !== '' ||
      url.hash !== '' ||
      url.username !== '' ||
      url.password !== ''
    ) {
      throw new ConfigError(
        `${raw.label} entry ${shown(entry)} is not an origin: write scheme://host[:port] with http, https, ws or wss and no path`,
      );
    }
    result.push(normalized);
  }
  return [...new Set(result)];
}

function tokenTtl(raw: Raw): number | null {
  const ms = parseDuration(raw.value);
  if (ms === undefined) {
    throw new ConfigError(`${raw.label} must be ${DURATION_HINT} (got ${shown(raw.value)})`);
  }
  return ms;
}

function presenceTtl(raw: Raw): number {
  const ms = parseDuration(raw.value);
  if (ms === undefined || ms === null || ms < 1_000 || ms > 3_600_000) {
    throw new ConfigError(
      `${raw.label} must be a duration from 1s to 1h, e.g. 30s (got ${shown(raw.value)})`,
    );
  }
  return ms;
}

function redisUrl(raw: Raw): string {
  const value = raw.value.trim();
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url === undefined || !(url.protocol === 'redis:' || url.protocol === 'rediss:')) {
    // Not echoed: a Redis URL may carry a password.
    throw new ConfigError(
      `${raw.label} must be a redis://[user:password@]host[:port][/db] or rediss:// URL`,
    );
  }
  if (url.hostname === '') throw new ConfigError(`${raw.label} has no host`);
  return value;
}

function redisPrefix(raw: Raw): string {
  if (!isValidPrefix(raw.value)) {
    throw new ConfigError(
      `${raw.label} must be 1 to 64 letters, digits, "-", "_", "." or ":" (got ${shown(raw.value)})`,
    );
  }
  return raw.value;
}

function databaseUrl(raw: Raw): string {
  const value = raw.value.trim();
  try {
    parseDatabaseUrl(value);
  } catch (error) {
    // parseDatabaseUrl never repeats the URL (it may hold a password); only the name changes.
    if (error instanceof ConfigError && raw.label !== 'DATABASE_URL') {
      throw new ConfigError(error.message.replace(/^DATABASE_URL/, raw.label));
    }
    throw error;
  }
  return value;
}

function jwtSecret(raw: Raw): string {
  const bytes = Buffer.byteLength(raw.value, 'utf8');
  if (bytes < MIN_JWT_SECRET_BYTES) {
    throw new ConfigError(
      `${raw.label} must be at least ${MIN_JWT_SECRET_BYTES} bytes (it has ${bytes}); generate one with: openssl rand -base64 48`,
    );
  }
  return raw.value;
}

function jwksUrl(raw: Raw): string {
  const value = raw.value.trim();
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const hostname = url?.hostname.replace(/^\[|\]$/g, '') ?? '';
  const secure = url?.protocol === 'https:' || (url?.protocol === 'http:' && isLoopback(hostname));
  if (url === undefined || !secure) {
    throw new ConfigError(
      `${raw.label} must be an https:// URL (http:// only on a loopback host) (got ${shown(value)})`,
    );
  }
  return value;
}

function nonEmpty(raw: Raw): string {
  const value = raw.value.trim();
  if (value === '') throw new ConfigError(`${raw.label} must not be blank`);
  return value;
}

function publishApiKey(raw: Raw): string {
  const { value } = raw;
  if (value.length < MIN_PUBLISH_KEY_LENGTH) {
    throw new ConfigError(
      `${raw.label} must be at least ${MIN_PUBLISH_KEY_LENGTH} characters (it has ${value.length})`,
    );
  }
  // It travels in an `Authorization: Bearer` header: no spaces, nothing outside ASCII.
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new ConfigError(`${raw.label} must be printable ASCII without spaces`);
  }
  return value;
}

function boolean(raw: Raw): boolean {
  const word = raw.value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new ConfigError(
    `${raw.label} must be true, false, 1, 0, yes or no (got ${shown(raw.value)})`,
  );
}

function logLevel(raw: Raw): LogLevel {
  const word = raw.value.trim().toLowerCase();
  const level = LOG_LEVELS.find((candidate) => candidate === word);
  if (level === undefined) {
    throw new ConfigError(
      `${raw.label} must be one of ${LOG_LEVELS.join(', ')} (got ${shown(raw.value)})`,
    );
  }
  return level;
}

function flagRaw(value: string | number | undefined, flag: string): Raw | undefined {
  return value === undefined ? undefined : { value: String(value), label: flag };
}

/**
 * Reads and validates the gateway configuration. Precedence, highest first: `flags`,
 * `env`, the config file (`file`, else `PORTCULLIS_CONFIG`), the defaults of
 * {@link GatewayConfig}.
 *
 * @example
 * ```ts
 * const config = loadConfig({ flags: { port: '9000' } });
 * const gateway = await startGateway(config);
 * ```
 * @throws {ConfigError} one line naming the variable, flag or file key at fault, e.g.
 *   `PORT must be an integer from 0 to 65535 (got "abc")`. Secrets (`JWT_SECRET`,
 *   `PUBLISH_API_KEY`, the URLs of databases and Redis) are never repeated.
 */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const { env = process.env, flags = {} } = options;
  const envValue = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };

  let configFile: string | null = null;
  let fromFile = new Map<EnvName, Raw>();
  const explicitFile = options.file ?? envValue('PORTCULLIS_CONFIG');
  if (explicitFile !== undefined) {
    configFile = explicitFile;
    fromFile = readConfigFile(
      explicitFile,
      options.file === undefined ? 'PORTCULLIS_CONFIG' : '--config',
    );
  }

  const pick = (name: EnvName): Raw | undefined => {
    const flag = FLAG_OF[name];
    const fromFlag = flag === undefined ? undefined : flagRaw(flags[flag], `--${flag}`);
    if (fromFlag !== undefined) return fromFlag;
    const value = envValue(name);
    return value === undefined ? fromFile.get(name) : { value, label: name };
  };
  const read = <T>(name: EnvName, parse: (raw: Raw) => T, fallback: T): T => {
    const raw = pick(name);
    return raw === undefined ? fallback : parse(raw);
  };

  const port = read('PORT', (raw) => integer(raw, 0, 65_535), DEFAULT_PORT);
  const boundHost = read('HOST', host, DEFAULT_HOST);
  const configuredOrigins = read('ALLOWED_ORIGINS', origins, null);
  const redis = read('REDIS_URL', redisUrl, null);
  const redisCluster = read('REDIS_CLUSTER', boolean, false);
  if (redisCluster) {
    const urlRaw = pick('REDIS_URL');
    if (redis === null || urlRaw === undefined) {
      throw new ConfigError(
        'REDIS_CLUSTER is true but REDIS_URL is not set: name one node of the cluster',
      );
    }
    if (!/^\/?0?$/.test(new URL(redis).pathname)) {
      throw new ConfigError(
        `${urlRaw.label} must not select a database with REDIS_CLUSTER=true: a Redis Cluster has only database 0`,
      );
    }
  }

  const secretRaw = pick('JWT_SECRET');
  const jwksRaw = pick('JWT_JWKS_URL');
  if (secretRaw !== undefined && jwksRaw !== undefined) {
    throw new ConfigError(
      `${secretRaw.label} and ${jwksRaw.label} are exclusive: set one (a shared secret, or the issuer's public keys)`,
    );
  }
  const jwt: GatewayJwtConfig = Object.freeze({
    secret: secretRaw === undefined ? null : jwtSecret(secretRaw),
    jwksUrl: jwksRaw === undefined ? null : jwksUrl(jwksRaw),
    issuer: read('JWT_ISSUER', nonEmpty, null),
    audience: read('JWT_AUDIENCE', nonEmpty, null),
  });
  if (jwt.secret === null && jwt.jwksUrl === null) {
    const orphan = pick('JWT_ISSUER') ?? pick('JWT_AUDIENCE');
    if (orphan !== undefined) {
      throw new ConfigError(
        `${orphan.label} is set but JWTs are not accepted: set JWT_SECRET or JWT_JWKS_URL too`,
      );
    }
  }

  const django = readDjangoConfig(
    { pick, databaseUrl, shown },
    { redis: redis !== null, jwtLabel: (secretRaw ?? jwksRaw)?.label ?? null },
  );

  const workersRaw = flagRaw(flags.workers, '--workers');
  const workers = workersRaw === undefined ? 1 : integer(workersRaw, 1, MAX_WORKERS);
  if (workers > 1 && redis === null) {
    throw new ConfigError(
      `--workers ${workers} needs REDIS_URL: worker processes share groups and revocations only through Redis`,
    );
  }

  return Object.freeze({
    port,
    host: boundHost,
    databaseUrl: read('DATABASE_URL', databaseUrl, DEFAULT_DATABASE_URL),
    redisUrl: redis,
    redisPrefix: read('REDIS_PREFIX', redisPrefix, 'portcullis'),
    redisCluster,
    allowedOrigins: Object.freeze(configuredOrigins ?? defaultAllowedOrigins(boundHost, port)),
    defaultOrigins: configuredOrigins === null,
    tokenTtlMs: read('TOKEN_TTL', tokenTtl, DEFAULT_TOKEN_TTL_MS),
    presenceTtlMs: read('PRESENCE_TTL', presenceTtl, 30_000),
    jwt,
    maxConnectionsPerUser: read(
      'MAX_CONNECTIONS_PER_USER',
      (raw) => integer(raw, 0, 1_000_000),
      DEFAULT_MAX_CONNECTIONS_PER_USER,
    ),
    maxConnectionsPerAddress: read(
      'MAX_CONNECTIONS_PER_ADDRESS',
      (raw) => integer(raw, 0, 1_000_000),
      DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    ),
    handshakeRefusal: read('HANDSHAKE_REFUSAL', boolean, false),
    publishApiKey: read('PUBLISH_API_KEY', publishApiKey, null),
    enableQueryToken: read('ENABLE_QUERY_TOKEN', boolean, false),
    logLevel: read('LOG_LEVEL', logLevel, 'info'),
    bench: flags.bench === true,
    workers,
    configFile,
    django,
  });
}
