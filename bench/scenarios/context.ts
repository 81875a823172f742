/**
 * What every scenario shares: the result model, the run's context, starting servers
 * and the credentials their clients present.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { Sizes } from '../config.js';
import type { LoadPool } from '../lib/load-pool.js';
import type { Progress } from '../lib/progress.js';
import { ServerHandle } from '../lib/server-handle.js';
import type { Unavailable } from '../lib/server-handle.js';
import type { CredentialPlan, ErrorCounts, Target } from '../load/protocol.js';
import type { ServerName, ServerOptions } from '../servers/protocol.js';

/** A column of results: one server, or one of raw ws's two broadcast loops. */
export type Variant = 'portcullis' | 'raw-ws' | 'raw-ws-coalesced' | 'socketio';

export const VARIANT_LABEL: Readonly<Record<Variant, string>> = {
  portcullis: 'Portcullis',
  'raw-ws': 'raw ws',
  'raw-ws-coalesced': 'raw ws, coalesced',
  socketio: 'Socket.IO',
};

export type ScenarioId = 'memory' | 'handshakes' | 'echo' | 'fanout' | 'cluster' | 'revocation';

/** A measured quantity of a scenario. */
export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  /** Drawn as a chart in BENCHMARKS.md. */
  readonly chart?: boolean;
  /** Reported as Portcullis ÷ each baseline. */
  readonly ratio?: boolean;
}

/** One measurement: one case on one variant. Rows of the same case are compared. */
export interface Row {
  readonly case: string;
  /** The row's label within its case: the variant, and the credential when there are several. */
  readonly series: string;
  readonly variant: Variant;
  readonly values: Readonly<Record<string, number | null>>;
  /** Fan-out: every client got every message. Echo: every request was answered. */
  readonly complete?: boolean;
  readonly errors?: ErrorCounts;
  readonly note?: string;
}

export interface Skip {
  /** `null`: the whole scenario. */
  readonly variant: Variant | null;
  readonly reason: string;
}

export interface ScenarioResult {
  readonly id: ScenarioId;
  readonly title: string;
  readonly description: string;
  readonly metrics: readonly Metric[];
  readonly rows: Row[];
  readonly skipped: Skip[];
  durationMs: number;
}

/** What a scenario gets from the run. */
export interface Context {
  readonly mode: 'full' | 'smoke';
  readonly sizes: Sizes;
  readonly pool: LoadPool;
  readonly progress: Progress;
  /** For SQLite files. */
  readonly tmpDir: string;
  /** HS256 secret of every Portcullis server of the run; the coordinator signs with it. */
  readonly jwtSecret: string;
  /** Servers to run (all three unless `--servers` narrows it). */
  readonly servers: readonly ServerName[];
}

export function newResult(
  id: ScenarioId,
  title: string,
  description: string,
  metrics: readonly Metric[],
): ScenarioResult {
  return { id, title, description, metrics, rows: [], skipped: [], durationMs: 0 };
}

/** Starts a server child; a Portcullis server gets its own SQLite file unless given one. */
export function startServer(
  context: Context,
  name: ServerName,
  options: ServerOptions = {},
  label: string = name,
): Promise<ServerHandle | Unavailable> {
  const full: ServerOptions =
    name === 'portcullis'
      ? {
          databasePath: join(context.tmpDir, `${randomBytes(6).toString('hex')}.db`),
          jwtSecret: context.jwtSecret,
          seed: true,
          ...options,
        }
      : options;
  return ServerHandle.start(name, full, label);
}

export function isRunning(server: ServerHandle | Unavailable): server is ServerHandle {
  return server instanceof ServerHandle;
}

export function targetOf(server: ServerHandle): Target {
  return { wire: server.ready.wire, url: server.wsUrl, httpBase: server.httpBase };
}

/**
 * How idle clients of a server authenticate: a pool of opaque tokens (`Authorization:
 * Token`) for Portcullis, `auth.token` for Socket.IO, nothing for raw ws.
 */
export async function idlePlan(context: Context, server: ServerHandle): Promise<CredentialPlan> {
  switch (server.name) {
    case 'portcullis':
      return {
        kind: 'header',
        scheme: 'Token',
        tokens: await server.issue(context.sizes.tokenPool),
      };
    case 'socketio':
      return { kind: 'socketio', tokens: await server.issue(context.sizes.tokenPool) };
    case 'raw-ws':
      return { kind: 'none' };
  }
}

/** The plan of a client per issued token: client `i` presents `tokens[i]`. */
export function tokenPlan(server: ServerHandle, tokens: readonly string[]): CredentialPlan {
  switch (server.name) {
    case 'portcullis':
      return { kind: 'header', scheme: 'Token', tokens };
    case 'socketio':
      return { kind: 'socketio', tokens };
    case 'raw-ws':
      return { kind: 'tag', tokens };
  }
}

/**
 * HS256 JWTs for the bench user, signed by the coordinator (the "identity provider"),
 * so signing costs nothing to the server measured. Each has a `jti` of its own.
 */
export async function signJwts(secret: string, userId: string, count: number): Promise<string[]> {
  const key = new TextEncoder().encode(secret);
  const jwts: string[] = [];
  for (let index = 0; index < count; index += 1) {
    jwts.push(
      await new SignJWT({ username: 'bench' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setJti(randomBytes(9).toString('base64url'))
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(key),
    );
  }
  return jwts;
}

/** A compact `{kind: count}` text for progress lines. */
export function errorText(errors: ErrorCounts | undefined): string {
  const entries = Object.entries(errors ?? {});
  return entries.length === 0 ? '0' : entries.map(([kind, n]) => `${kind}×${n}`).join(' ');
}

export function errorTotal(errors: ErrorCounts | undefined): number {
  return Object.values(errors ?? {}).reduce((sum, n) => sum + n, 0);
}

/** Stops every running server of a map, in parallel. */
export async function stopAll(servers: Iterable<ServerHandle | Unavailable>): Promise<void> {
  await Promise.all([...servers].filter(isRunning).map((server) => server.stop()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
