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
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors.js';
import { ExitCode } from './commands/command.js';
import type { CliIO, CommandContext, ParsedArguments } from './commands/command.js';
import { describeFailure, firstLine, quoted, UsageError } from './commands/failures.js';
import { migrate } from './commands/migrate.js';
import { createRoom } from './commands/room-create.js';
import { serve } from './commands/serve.js';
import { createToken } from './commands/token-create.js';
import { revokeTokens } from './commands/token-revoke.js';
import { createUser } from './commands/user-create.js';
import { setUserPassword } from './commands/user-password.js';

export { ExitCode } from './commands/command.js';
export type { CliIO, CliWritable } from './commands/command.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** One entry of the argument table. */
interface Command {
  /** Shown in `--help` and after a usage error. */
  readonly usage: string;
  readonly summary: string;
  readonly options: Options;
  /** Names of the positional arguments, the optional ones last. */
  readonly positionals: readonly string[];
  readonly requiredPositionals: number;
  run(context: CommandContext): Promise<number>;
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
  'user password': {
    usage: 'user password NAME [--password-stdin]',
    summary:
      'set the password of user NAME; without --password-stdin a new one is generated and printed once',
    options: { 'password-stdin': { type: 'boolean' } },
    positionals: ['NAME'],
    requiredPositionals: 1,
    run: setUserPassword,
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
  user: ['create', 'password'],
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
  REDIS_URL (unset: one process)  REDIS_PREFIX (portcullis)  REDIS_CLUSTER (false)
  ALLOWED_ORIGINS (comma list; default: the gateway's origin)
  TOKEN_TTL (30d; 12h, 90m, 45s or none)  JWT_SECRET | JWT_JWKS_URL  JWT_ISSUER  JWT_AUDIENCE
  PUBLISH_API_KEY (unset: publish API off)  ENABLE_QUERY_TOKEN (false)  LOG_LEVEL (info)
  PORTCULLIS_CONFIG (a config file, like --config)

Django mode (docs/django.md): DJANGO_DATABASE_URL (the Django app's database, read-only)
  DJANGO_SECRET_KEY  DJANGO_JWT_SIGNING_KEY (default: the secret key)  DJANGO_SIMPLE_JWT (JSON)
  DJANGO_SESSION_COOKIE (sessionid)  DJANGO_SESSION_COOKIE_AGE (1209600)
  DJANGO_REVALIDATE_INTERVAL (5s)  DJANGO_USER_TABLE (auth_user)  DJANGO_ROOM_TABLE (found)
  CHANNELS_REDIS_PREFIX (asgi; with REDIS_URL)

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

function parseCommandLine(
  command: Command,
  name: string,
  args: readonly string[],
): ParsedArguments {
  let parsed: ParsedArguments;
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
