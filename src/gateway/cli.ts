/**
 * The `portcullis` command (SPEC §8). {@link main} returns the exit status instead of
 * exiting, so the whole command runs in process under test; `bin/portcullis.js` is the
 * only place that touches `process.exitCode`.
 *
 * Exit status: 0 done; 1 the command failed (bad configuration, database or Redis
 * unreachable, unknown user, taken username); 2 the command line itself is wrong
 * (unknown command or option, missing or extra argument, malformed flag value). Every
 * failure is one line on stderr, `portcullis: <message>`, never a stack trace.
 *
 * Output is made for scripts: what a command creates goes to stdout alone (the token of
 * `token create`, the id of `room create`), and what a person reads about it to stderr,
 * so `TOKEN=$(portcullis token create alice)` captures just the token.
 *
 * @module
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { pino } from 'pino';
import { broadcastCredentialRevoked, broadcastUserRevoked } from '../auth/revocation.js';
import { ConfigError, PortcullisError, ServiceUnavailableError } from '../errors.js';
import { openStore, parseDatabaseUrl } from '../store/index.js';
import type { Store } from '../store/store.js';
import { loadConfig } from './config.js';
import type { ConfigFlags, GatewayConfig } from './config.js';
import { DURATION_HINT, parseDuration } from './durations.js';

/** Where a command writes: `process.stdout`, `process.stderr` or anything with `write`. */
export interface CliWritable {
  write(chunk: string): unknown;
}

/** The process the command talks to; every field defaults to the real one. */
export interface CliIO {
  readonly stdout: CliWritable;
  readonly stderr: CliWritable;
  /** Read by `user create --password-stdin`. */
  readonly stdin: AsyncIterable<string | Buffer> & { readonly isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * `serve` stops when this aborts. Without it, `serve` stops on SIGTERM or SIGINT; a
   * second signal during shutdown ends the process at once.
   */
  readonly shutdown?: AbortSignal;
}

/** Exit statuses of {@link main}. */
export const ExitCode = {
  /** The command did what it was asked. */
  Ok: 0,
  /** The command failed: configuration, an unreachable service, unknown or taken names. */
  Failure: 1,
  /** The command line is wrong: unknown command or option, missing or extra argument. */
  Usage: 2,
} as const;

/** A revocation to announce to running gateways: one token, or every socket of a user. */
export type RevokedCredentials = { readonly tokenId: string } | { readonly userId: string };

/** A wrong command line: exit 2. */
class UsageError extends Error {}
/** A failed command whose message is already the one line to print: exit 1. */
class CommandFailed extends Error {}

const MIN_PASSWORD_LENGTH = 8;
/** scrypt takes any length, but a password longer than this is a mistake (a pasted file). */
const MAX_PASSWORD_LENGTH = 1_024;
/** The token authenticator's cache lifetime: how late a gateway without Redis notices. */
const TOKEN_CACHE_SECONDS = 5;

type Options = NonNullable<ParseArgsConfig['options']>;

interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

interface Context {
  readonly io: CliIO;
  /** The arguments after the command words. */
  readonly args: readonly string[];
  readonly parsed: Parsed;
}

interface Command {
  /** Shown in `--help` and after a usage error. */
  readonly usage: string;
  readonly summary: string;
  readonly options: Options;
  /** Names of the positional arguments, the optional ones last. */
  readonly positionals: readonly string[];
  readonly requiredPositionals: number;
  run(context: Context): Promise<number>;
}

const COMMON_OPTIONS: Options = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COMMANDS: Readonly<Record<string, Command>> = {
  serve: {
    usage: 'serve [--port N] [--host H] [--bench] [--workers N] [--demo]',
    summary: 'run the gateway until SIGTERM or SIGINT',
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      bench: { type: 'boolean' },
      workers: { type: 'string' },
      demo: { type: 'boolean' },
    },
    positionals: [],
    requiredPositionals: 0,
    run: serve,
  },
  migrate: {
    usage: 'migrate',
    summary: 'create or upgrade the database schema',
    options: {},
    positionals: [],
    requiredPositionals: 0,
    run: migrate,
  },
  'user create': {
    usage: 'user create NAME [--staff] [--password-stdin]',
    summary: 'add a user; without --password-stdin it has no password and signs in with tokens',
    options: { staff: { type: 'boolean' }, 'password-stdin': { type: 'boolean' } },
    positionals: ['NAME'],
    requiredPositionals: 1,
    run: createUser,
  },
  'token create': {
    usage: 'token create NAME [--ttl 30d] [--name LABEL]',
    summary: 'print a new token for user NAME (shown once); its id and expiry go to stderr',
    options: { ttl: { type: 'string' }, name: { type: 'string' } },
    positionals: ['NAME'],
    requiredPositionals: 1,
    run: createToken,
  },
  'token revoke': {
    usage: 'token revoke (ID | --user NAME)',
    summary: 'revoke one token, or every token of a user, and close their sockets',
    options: { user: { type: 'string' } },
    positionals: ['ID'],
    requiredPositionals: 0,
    run: revokeTokens,
  },
  'room create': {
    usage: 'room create TITLE [--staff-only]',
    summary: 'add a MultiChat room and print its id',
    options: { 'staff-only': { type: 'boolean' } },
    positionals: ['TITLE'],
    requiredPositionals: 1,
    run: createRoom,
  },
};

const GROUPS: Readonly<Record<string, readonly string[]>> = {
  user: ['create'],
  token: ['create', 'revoke'],
  room: ['create'],
};

function helpText(): string {
  const lines = Object.values(COMMANDS).map(
    (command) => `  portcullis ${command.usage}\n      ${command.summary}`,
  );
  return `Usage:
${lines.join('\n')}
  portcullis --help | --version

Every command also takes --config FILE, a JSON file of the settings below (keys as
written here or in camelCase); flags win over the environment, the environment over the
file, the file over the defaults.

Environment:
  PORT (8000)  HOST (127.0.0.1)  DATABASE_URL (sqlite:./portcullis.db, or postgres://...)
  REDIS_URL (unset: one process)  ALLOWED_ORIGINS (comma list; default: the gateway's origin)
  TOKEN_TTL (30d; 12h, 90m, 45s or none)  JWT_SECRET | JWT_JWKS_URL  JWT_ISSUER  JWT_AUDIENCE
  PUBLISH_API_KEY (unset: publish API off)  ENABLE_QUERY_TOKEN (false)  LOG_LEVEL (info)
  PORTCULLIS_CONFIG (a config file, like --config)

Exit status: 0 done, 1 failed, 2 wrong command line.
`;
}

function version(): string {
  const pkg: unknown = JSON.parse(
    readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
  );
  const value =
    typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  return typeof value === 'string' ? value : 'unknown';
}

function defaultIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** An argument quoted for a message, unless it looks like a credential pasted by mistake. */
function quoted(arg: string): string {
  return /\b(pcu|pct)_/.test(arg) || arg.length > 200
    ? '(a credential-like value)'
    : JSON.stringify(arg);
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]?.trim() ?? '';
}

/**
 * Runs the `portcullis` command line (SPEC §8) and resolves with its exit status; it never
 * calls `process.exit`.
 *
 * @param argv the arguments after the program name (`process.argv.slice(2)`).
 * @param io where to read and write, and the environment; defaults to this process's.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(argv: readonly string[], io: Partial<CliIO> = {}): Promise<number> {
  const resolved: CliIO = { ...defaultIO(), ...io };
  const fail = (message: string, code: number): number => {
    resolved.stderr.write(`portcullis: ${firstLine(message)}\n`);
    return code;
  };
  let command: Command | undefined;
  try {
    const [first, second] = argv;
    if (first === undefined) {
      resolved.stderr.write(helpText());
      return ExitCode.Usage;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      resolved.stdout.write(helpText());
      return ExitCode.Ok;
    }
    if (first === '--version' || first === '-v' || first === '-V') {
      resolved.stdout.write(`${version()}\n`);
      return ExitCode.Ok;
    }
    let name = first;
    let rest = argv.slice(1);
    const subcommands = GROUPS[first];
    if (subcommands !== undefined) {
      if (second === '--help' || second === '-h') {
        resolved.stdout.write(helpText());
        return ExitCode.Ok;
      }
      if (second === undefined || !subcommands.includes(second)) {
        throw new UsageError(
          second === undefined || second.startsWith('-')
            ? `"${first}" needs a subcommand: ${subcommands.join(', ')}`
            : `unknown command ${quoted(`${first} ${second}`)}; "${first}" has: ${subcommands.join(', ')}`,
        );
      }
      name = `${first} ${second}`;
      rest = argv.slice(2);
    }
    command = COMMANDS[name];
    if (command === undefined) {
      throw new UsageError(
        first.startsWith('-')
          ? `expected a command before ${quoted(first)}; run portcullis --help`
          : `unknown command ${quoted(first)}; run portcullis --help`,
      );
    }
    const parsed = parseCommandLine(command, name, rest);
    if (parsed.values['help'] === true) {
      resolved.stdout.write(`Usage: portcullis ${command.usage}\n  ${command.summary}\n`);
      return ExitCode.Ok;
    }
    return await command.run({ io: resolved, args: rest, parsed });
  } catch (error) {
    if (error instanceof UsageError) {
      const usage = command === undefined ? '' : `; usage: portcullis ${command.usage}`;
      return fail(`${error.message}${usage}`, ExitCode.Usage);
    }
    // A config error about a flag (`--port abc`) is a wrong command line too.
    if (error instanceof ConfigError) {
      return fail(
        error.message,
        error.message.startsWith('--') ? ExitCode.Usage : ExitCode.Failure,
      );
    }
    return fail(describeFailure(error), ExitCode.Failure);
  }
}

function parseCommandLine(command: Command, name: string, args: readonly string[]): Parsed {
  let parsed: Parsed;
  try {
    const result = parseArgs({
      args: [...args],
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    const values: Record<string, string | boolean> = {};
    // No option is declared `multiple`, so no value is an array.
    for (const [key, value] of Object.entries(result.values)) {
      if (typeof value === 'string' || typeof value === 'boolean') values[key] = value;
    }
    parsed = { values, positionals: result.positionals };
  } catch (error) {
    throw new UsageError(describeParseError(error, name));
  }
  if (parsed.values['help'] === true) return parsed;
  const { positionals } = parsed;
  if (positionals.length < command.requiredPositionals) {
    const missing = command.positionals[positionals.length] ?? 'an argument';
    throw new UsageError(`${name} needs ${missing}`);
  }
  const extra = positionals[command.positionals.length];
  if (extra !== undefined) {
    throw new UsageError(`unexpected argument ${quoted(extra)} for ${name}`);
  }
  return parsed;
}

/** parseArgs explains itself in several lines; ours say the same in one. */
function describeParseError(error: unknown, name: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  const option = /'(-{1,2}[^' <]+)/.exec(message)?.[1] ?? 'an option';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option} for ${name}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return message.includes('does not take an argument')
      ? `${option} takes no value`
      : `${option} needs a value`;
  }
  return firstLine(message);
}

/** The one line for an error that was not a usage error. */
function describeFailure(error: unknown): string {
  if (error instanceof ServiceUnavailableError) return describeUnavailable(error);
  if (error instanceof CommandFailed || error instanceof PortcullisError) return error.message;
  // The store throws RangeError for invalid names and titles; its message is the rule.
  if (error instanceof RangeError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `unexpected error: ${firstLine(message)}`;
}

function causeOf(error: Error): { code?: string; message?: string } {
  const cause: unknown = error.cause;
  if (typeof cause !== 'object' || cause === null) return {};
  const code = (cause as { code?: unknown }).code;
  const message = (cause as { message?: unknown }).message;
  return {
    ...(typeof code === 'string' && code !== '' ? { code } : {}),
    ...(typeof message === 'string' ? { message } : {}),
  };
}

/** One line for a service that failed; `database` names where, without its password. */
function describeUnavailable(error: ServiceUnavailableError, database?: string): string {
  const { code, message = '' } = causeOf(error);
  if (!error.message.startsWith('database')) {
    return `${error.message}${code === undefined ? '' : ` (${code})`}`;
  }
  const where = database === undefined ? '' : ` at ${database}`;
  if (code === '42P01' || /no such table/.test(message)) {
    return `the database${where} has no Portcullis schema yet: run portcullis migrate`;
  }
  const why = code ?? (message === '' ? undefined : firstLine(message).slice(0, 120));
  return `database is unavailable${where}${why === undefined ? '' : ` (${why})`}`;
}

/** `DATABASE_URL` without its password or options, for messages. */
function describeDatabase(databaseUrl: string): string {
  const target = parseDatabaseUrl(databaseUrl);
  if (target.kind === 'sqlite') return `sqlite:${target.path}`;
  const url = new URL(target.url);
  const user = url.username === '' ? '' : `${url.username}@`;
  return `${url.protocol}//${user}${url.host}${url.pathname}`;
}

function configFor(context: Context, flags: ConfigFlags = {}): GatewayConfig {
  const file = context.parsed.values['config'];
  return loadConfig({
    env: context.io.env,
    flags,
    ...(typeof file === 'string' ? { file } : {}),
  });
}

/**
 * Opens the configured store for one command. The embedded SQLite database is migrated
 * first, as `serve` does, so `user create` works on a new file; PostgreSQL schemas are
 * left to `portcullis migrate`, which operators run on purpose.
 */
async function withStore<T>(
  config: GatewayConfig,
  work: (store: Store) => Promise<T>,
  { autoMigrate = true } = {},
): Promise<T> {
  const store = openStore(config.databaseUrl, { tokenTtlMs: config.tokenTtlMs });
  try {
    if (autoMigrate && store.kind === 'sqlite') await store.migrate();
    return await work(store);
  } catch (error) {
    if (error instanceof ServiceUnavailableError) {
      throw new CommandFailed(describeUnavailable(error, describeDatabase(config.databaseUrl)), {
        cause: error,
      });
    }
    throw error;
  } finally {
    await store.close();
  }
}

async function migrate(context: Context): Promise<number> {
  const config = configFor(context);
  const applied = await withStore(config, (store) => store.migrate(), { autoMigrate: false });
  const { stdout } = context.io;
  if (applied.length === 0) stdout.write('database schema is up to date\n');
  for (const migration of applied) stdout.write(`applied ${migration}\n`);
  return ExitCode.Ok;
}

async function createUser(context: Context): Promise<number> {
  const { values, positionals } = context.parsed;
  const username = positionals[0] ?? '';
  const config = configFor(context);
  const password =
    values['password-stdin'] === true ? await readPassword(context.io.stdin) : undefined;
  const isStaff = values['staff'] === true;
  const user = await withStore(config, (store) =>
    store.createUser({ username, isStaff, ...(password === undefined ? {} : { password }) }),
  );
  const kind = isStaff ? 'staff user' : 'user';
  const login =
    password === undefined
      ? `; it has no password, so it signs in with tokens only (portcullis token create ${user.username})`
      : '';
  context.io.stdout.write(
    `created ${kind} ${JSON.stringify(user.username)} (id ${user.id})${login}\n`,
  );
  return ExitCode.Ok;
}

/**
 * Reads the first line of stdin, without its line ending. A terminal is refused: typing
 * there would echo the password, and a prompt that hides it is a job for the shell.
 */
async function readPassword(stdin: CliIO['stdin']): Promise<string> {
  if (stdin.isTTY === true) {
    throw new CommandFailed(
      '--password-stdin reads a piped password, not a terminal: read -rs PW && printf \'%s\\n\' "$PW" | portcullis user create NAME --password-stdin',
    );
  }
  const decoder = new StringDecoder('utf8');
  let text = '';
  let complete = false;
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    if (text.includes('\n')) {
      complete = true;
      break;
    }
    if (text.length > MAX_PASSWORD_LENGTH + 2) break;
  }
  if (!complete) text += decoder.end();
  const password = text.split('\n', 1)[0]?.replace(/\r$/, '') ?? '';
  const length = [...password].length;
  if (length === 0) throw new CommandFailed('--password-stdin read an empty password');
  if (length < MIN_PASSWORD_LENGTH) {
    throw new CommandFailed(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw new CommandFailed(`password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
  return password;
}

async function createToken(context: Context): Promise<number> {
  const { values, positionals } = context.parsed;
  const username = positionals[0] ?? '';
  const ttlText = values['ttl'];
  let ttlMs: number | null | undefined;
  if (typeof ttlText === 'string') {
    ttlMs = parseDuration(ttlText);
    if (ttlMs === undefined) {
      throw new UsageError(`--ttl must be ${DURATION_HINT} (got ${JSON.stringify(ttlText)})`);
    }
  }
  const label = typeof values['name'] === 'string' ? values['name'] : '';
  const config = configFor(context);
  const created = await withStore(config, async (store) => {
    const user = await store.getUserByUsername(username);
    if (user === undefined) throw new CommandFailed(`no user named ${JSON.stringify(username)}`);
    if (!user.isActive) {
      throw new CommandFailed(
        `user ${JSON.stringify(username)} is inactive: its tokens would not work`,
      );
    }
    return store.createToken(user.id, {
      name: label,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    });
  });
  context.io.stdout.write(`${created.token}\n`);
  const expiry =
    created.expiresAt === null ? 'never expires' : `expires ${created.expiresAt.toISOString()}`;
  const labelled = label === '' ? '' : ` (${JSON.stringify(label)})`;
  context.io.stderr.write(
    `token ${created.id}${labelled} for ${JSON.stringify(username)} ${expiry}; it is shown only once\n`,
  );
  return ExitCode.Ok;
}

async function revokeTokens(context: Context): Promise<number> {
  const { values, positionals } = context.parsed;
  const id = positionals[0];
  const username = values['user'];
  if (id !== undefined && typeof username === 'string') {
    throw new UsageError('give a token ID or --user NAME, not both');
  }
  if (id === undefined && typeof username !== 'string') {
    throw new UsageError('token revoke needs a token ID or --user NAME');
  }
  if (id !== undefined && !/^[1-9][0-9]{0,15}$/.test(id)) {
    // Never echoed: people paste the token itself here, and it must not reach a log.
    throw new UsageError(
      'a token ID is the number token create printed on stderr, not the token itself',
    );
  }
  const config = configFor(context);
  const { stdout, stderr } = context.io;
  let revoked: RevokedCredentials;
  if (id !== undefined) {
    const done = await withStore(config, (store) => store.revokeToken(id));
    if (!done) throw new CommandFailed(`no live token with id ${id} (unknown or already revoked)`);
    stdout.write('revoked 1 token\n');
    revoked = { tokenId: id };
  } else {
    const name = String(username);
    const { userId, tokenIds } = await withStore(config, async (store) => {
      const user = await store.getUserByUsername(name);
      if (user === undefined) throw new CommandFailed(`no user named ${JSON.stringify(name)}`);
      return { userId: user.id, tokenIds: await store.revokeUserTokens(user.id) };
    });
    const count = tokenIds.length;
    stdout.write(`revoked ${count} token${count === 1 ? '' : 's'} of ${JSON.stringify(name)}\n`);
    if (count === 0) return ExitCode.Ok;
    revoked = { userId };
  }
  try {
    const published = await publishRevocation(config, revoked);
    if (!published) {
      stderr.write(
        `note: without REDIS_URL, running gateways refuse the revoked tokens within ${TOKEN_CACHE_SECONDS} s, but sockets already open stay open until they reconnect or expire (POST /api/auth/logout closes them at once)\n`,
      );
    }
  } catch (error) {
    const why = error instanceof Error ? describeFailure(error) : String(error);
    throw new CommandFailed(`revoked, but live sockets could not be closed: ${why}`);
  }
  return ExitCode.Ok;
}

/**
 * Tells every running gateway that shares `config.redisUrl` about a revocation made
 * elsewhere (the CLI, an admin job): their sockets authenticated by the token, or all of
 * the user's sockets, close 4401 `token revoked`, and their verification caches forget it.
 * Revoke in the store first.
 *
 * Gateways without Redis cannot be reached from another process: they refuse the token
 * once their verification cache (5 s) lets go of it, and keep its open sockets until
 * they reconnect; `POST /api/auth/logout`, which runs inside the gateway, closes them.
 *
 * @returns `true` when published, `false` when `redisUrl` is `null`.
 * @throws {ServiceUnavailableError} when Redis is unreachable.
 * @example
 * ```ts
 * if (await store.revokeToken(id)) await publishRevocation(config, { tokenId: id });
 * ```
 */
export async function publishRevocation(
  config: Pick<GatewayConfig, 'redisUrl'>,
  revoked: RevokedCredentials,
): Promise<boolean> {
  if (config.redisUrl === null) return false;
  const { RedisChannelLayer } = await import('../layers/redis.js');
  // The layer's reconnect chatter would break the one-line contract; failures surface as errors.
  const layer = await RedisChannelLayer.connect({
    url: config.redisUrl,
    logger: pino({ level: 'silent' }),
  });
  try {
    if ('tokenId' in revoked) await broadcastCredentialRevoked(layer, revoked.tokenId);
    else await broadcastUserRevoked(layer, revoked.userId);
  } finally {
    await layer.close();
  }
  return true;
}

async function createRoom(context: Context): Promise<number> {
  const { values, positionals } = context.parsed;
  const title = positionals[0] ?? '';
  const staffOnly = values['staff-only'] === true;
  const config = configFor(context);
  const id = await withStore(config, (store) => store.createRoom({ title, staffOnly }));
  context.io.stdout.write(`${id}\n`);
  context.io.stderr.write(
    `created room ${JSON.stringify(title)}${staffOnly ? ' (staff only)' : ''}\n`,
  );
  return ExitCode.Ok;
}

// -- serve ---------------------------------------------------------------------------

/** The bin that cluster workers run: the same command line, in a worker process. */
const BIN_PATH = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

async function serve(context: Context): Promise<number> {
  const { values } = context.parsed;
  const flag = (name: string): string | undefined =>
    typeof values[name] === 'string' ? values[name] : undefined;
  const port = flag('port');
  const host = flag('host');
  const workers = flag('workers');
  const config = configFor(context, {
    ...(port === undefined ? {} : { port }),
    ...(host === undefined ? {} : { host }),
    ...(workers === undefined ? {} : { workers }),
    bench: values['bench'] === true,
  });
  const demo = values['demo'] === true;
  if (config.workers > 1 && cluster.isPrimary) {
    return servePrimary(context, config, demo);
  }
  try {
    return await serveOne(context, config, demo);
  } finally {
    // A cluster worker's IPC channel keeps it alive after its work: let go of it to exit.
    if (cluster.isWorker) cluster.worker?.disconnect();
  }
}

async function serveOne(context: Context, config: GatewayConfig, demo: boolean): Promise<number> {
  const { startGateway } = await import('./server.js');
  const announce = (line: string): void => void context.io.stdout.write(`${line}\n`);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(config, { demo, announce });
  } catch (error) {
    throw new CommandFailed(describeStartFailure(error, config));
  }
  await shutdownRequested(context.io, cluster.isWorker);
  await gateway.close();
  return ExitCode.Ok;
}

function describeStartFailure(error: unknown, config: GatewayConfig): string {
  const code = (error as { code?: unknown } | null)?.code;
  const where = `${config.host}:${config.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `port ${config.port} on ${config.host} is already in use (set PORT or --port)`;
    case 'EACCES':
      return `no permission to listen on ${where} (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `HOST ${config.host} is not an address of this machine`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST ${config.host} does not resolve to an address`;
    default:
      return error instanceof ServiceUnavailableError
        ? describeUnavailable(error, describeDatabase(config.databaseUrl))
        : describeFailure(error);
  }
}

/**
 * Resolves on the first SIGTERM or SIGINT (or when `io.shutdown` aborts). Afterwards a
 * second signal takes its default action and ends the process, the usual way out of a
 * shutdown that hangs; cluster workers keep ignoring signals, their primary decides.
 */
function shutdownRequested(io: CliIO, keepIgnoring: boolean): Promise<void> {
  const { shutdown } = io;
  if (shutdown !== undefined) {
    return new Promise((resolve) => {
      if (shutdown.aborted) resolve();
      else shutdown.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  return new Promise((resolve) => {
    const onSignal = (): void => {
      if (!keepIgnoring) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * `serve --workers N`: this process migrates (and seeds the demo) once, then runs N
 * copies of the command as cluster workers sharing the port, starting the first alone so
 * that a bad port or database is reported once, not N times. A worker that dies stops
 * them all with status 1, leaving restarts to the supervisor (systemd, Kubernetes).
 */
async function servePrimary(
  context: Context,
  config: GatewayConfig,
  demo: boolean,
): Promise<number> {
  const { io } = context;
  await withStore(
    config,
    async (store) => {
      if (store.kind === 'sqlite') await store.migrate();
      if (demo) {
        const { seedDemo } = await import('./demo.js');
        await seedDemo(store, (line) => void io.stdout.write(`${line}\n`));
      }
    },
    { autoMigrate: false },
  );
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(io.env)) if (value !== undefined) env[key] = value;
  cluster.setupPrimary({
    exec: BIN_PATH,
    // The demo was seeded above, once: workers would race on it.
    args: ['serve', ...context.args.filter((arg) => arg !== '--demo')],
  });

  const workers = new Set<Worker>();
  const listening = new Set<Worker>();
  let stopping = false;
  let failed = false;
  const exited = new Promise<void>((resolveAll) => {
    cluster.on('exit', (worker, code, signal) => {
      workers.delete(worker);
      if (!stopping || code !== 0) failed = true;
      // A worker that never listened printed its own one line (a taken port, say).
      if (!stopping && listening.has(worker)) {
        io.stderr.write(
          `portcullis: worker ${worker.id} exited (${signal ?? `status ${code}`}); stopping the others\n`,
        );
      }
      if (!stopping) stop();
      if (workers.size === 0) resolveAll();
    });
  });
  const stop = (): void => {
    stopping = true;
    for (const worker of workers) worker.process.kill('SIGTERM');
  };
  const start = (): Promise<boolean> =>
    new Promise((resolve) => {
      const worker = cluster.fork(env);
      workers.add(worker);
      worker.once('listening', () => {
        listening.add(worker);
        resolve(true);
      });
      worker.once('exit', () => resolve(false));
    });

  if (!(await start())) {
    // The worker already printed its one line; the primary adds none.
    await exited;
    return ExitCode.Failure;
  }
  const started = await Promise.all(Array.from({ length: config.workers - 1 }, start));
  if (started.every(Boolean)) {
    await Promise.race([shutdownRequested(io, false), exited]);
  }
  stop();
  await exited;
  return failed ? ExitCode.Failure : ExitCode.Ok;
}
