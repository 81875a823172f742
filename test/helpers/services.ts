/**
 * Probes for the machine's PostgreSQL and Redis, for integration tests.
 *
 * Locally, a suite that needs an unreachable service is skipped with a reason. With
 * `CI=true` an unreachable service is a failure, never a skip: CI must not go green by
 * testing nothing.
 *
 * ```ts
 * describe('postgres', await serviceSuiteOptions('postgres'), () => {
 *   let url: string;
 *   before(async () => { url = await serviceUrl('postgres'); });
 *   ...
 * });
 * ```
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import pg from 'pg';

export type ServiceName = 'postgres' | 'redis';

export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const PROBE_TIMEOUT_MS = 2_000;

/** True when running in CI, where a missing service fails the run. */
export function isCI(): boolean {
  return process.env['CI'] === 'true';
}

/** The URL tests use for a service: `TEST_DATABASE_URL` / `TEST_REDIS_URL`, else the default. */
export function configuredUrl(name: ServiceName): string {
  return name === 'postgres'
    ? (process.env['TEST_DATABASE_URL'] ?? DEFAULT_POSTGRES_URL)
    : (process.env['TEST_REDIS_URL'] ?? DEFAULT_REDIS_URL);
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  if (!URL.canParse(url)) return '(unparsable URL)';
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}

async function probePostgres(url: string): Promise<boolean> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Sends a RESP `PING`; any reply (`+PONG`, or `-NOAUTH` behind a password) means it is up. */
function probeRedis(url: string): Promise<boolean> {
  if (!URL.canParse(url)) return Promise.resolve(false);
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data[0] === 0x2b /* + */ || data[0] === 0x2d /* - */));
  });
}

const probes = new Map<ServiceName, Promise<string | undefined>>();

/** The service's URL when it answers, else `undefined`. Probed once per process. */
export function probeService(name: ServiceName): Promise<string | undefined> {
  let probe = probes.get(name);
  if (probe === undefined) {
    const url = configuredUrl(name);
    probe = (name === 'postgres' ? probePostgres(url) : probeRedis(url)).then((up) =>
      up ? url : undefined,
    );
    probes.set(name, probe);
  }
  return probe;
}

/** PostgreSQL's URL when it answers, else `undefined`. */
export function postgresUrl(): Promise<string | undefined> {
  return probeService('postgres');
}

/** Redis's URL when it answers, else `undefined`. */
export function redisUrl(): Promise<string | undefined> {
  return probeService('redis');
}

function unreachable(name: ServiceName): string {
  return `${name} is not reachable at ${redact(configuredUrl(name))}`;
}

/**
 * Options for `describe`: a skip reason when the service is unreachable locally; with
 * `CI=true` never a skip, so the suite's {@link serviceUrl} call fails it instead.
 */
export async function serviceSuiteOptions(name: ServiceName): Promise<{ skip: string | false }> {
  const url = await probeService(name);
  if (url !== undefined || isCI()) return { skip: false };
  const variable = name === 'postgres' ? 'TEST_DATABASE_URL' : 'TEST_REDIS_URL';
  return { skip: `${unreachable(name)} (set ${variable})` };
}

/**
 * The service's URL, or an error (in a `before` hook, it fails every test of the suite).
 * Pair with {@link serviceSuiteOptions}, which skips the suite locally first.
 */
export async function serviceUrl(name: ServiceName): Promise<string> {
  const url = await probeService(name);
  if (url === undefined) {
    throw new Error(`${unreachable(name)}${isCI() ? '; CI=true requires it' : ''}`);
  }
  return url;
}

/**
 * For one test: the service's URL; when unreachable, skips the test locally (and
 * returns `undefined`) or fails it in CI.
 *
 * ```ts
 * it('talks to redis', async (t) => {
 *   const url = await requireService(t, 'redis');
 *   if (url === undefined) return;
 *   ...
 * });
 * ```
 */
export async function requireService(
  t: TestContext,
  name: ServiceName,
): Promise<string | undefined> {
  const url = await probeService(name);
  if (url !== undefined) return url;
  if (isCI()) throw new Error(`${unreachable(name)}; CI=true requires it`);
  t.skip(unreachable(name));
  return undefined;
}

/** A private PostgreSQL schema for one test. */
export interface PostgresSchema {
  /** `baseUrl` with `search_path` set to the schema, so unqualified tables land there. */
  readonly url: string;
  readonly schema: string;
  /** Drops the schema and everything in it. Close clients using {@link url} first. */
  drop(): Promise<void>;
}

/**
 * Creates a fresh randomly named schema, so parallel test files and tests never share
 * tables. Drop it in teardown.
 */
export async function createPostgresSchema(baseUrl: string): Promise<PostgresSchema> {
  const schema = `pcu_test_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: baseUrl });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`create schema ${schema}`);
  const url = new URL(baseUrl);
  // libpq's `options` sets the session's search_path at connect time; pg passes it through.
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    schema,
    drop: () => admin(`drop schema if exists ${schema} cascade`),
  };
}
