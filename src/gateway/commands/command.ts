/**
 * What every command of the `portcullis` command line gets (its parsed arguments and the
 * process it talks to) and the two things most of them do first: read the configuration
 * and open the store.
 *
 * @module
 */
import { ServiceUnavailableError } from '../../errors.js';
import { openStore } from '../../store/index.js';
import type { Store } from '../../store/store.js';
import { loadConfig } from '../config.js';
import type { ConfigFlags, GatewayConfig } from '../config.js';
import { CommandFailed, describeDatabase, describeFailure } from './failures.js';

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
   * `serve` stops when this aborts. Without it, `serve` stops on SIGTERM or SIGINT; more
   * signals are the same request, and a shutdown past its deadline exits with status 1.
   */
  readonly shutdown?: AbortSignal;
}

/** Exit statuses of the command line. */
export const ExitCode = {
  /** The command did what it was asked. */
  Ok: 0,
  /** The command failed: configuration, an unreachable service, unknown or taken names. */
  Failure: 1,
  /** The command line is wrong: unknown command or option, missing or extra argument. */
  Usage: 2,
} as const;

/** A command line parsed against its command's entry in the argument table. */
export interface ParsedArguments {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/** What a command runs with. */
export interface CommandContext {
  readonly io: CliIO;
  /** The arguments after the command words, as typed. */
  readonly args: readonly string[];
  readonly parsed: ParsedArguments;
}

/** The configuration for a command: `--config FILE`, the environment and `flags`. */
export function configFor(context: CommandContext, flags: ConfigFlags = {}): GatewayConfig {
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
export async function withStore<T>(
  config: GatewayConfig,
  work: (store: Store) => Promise<T>,
  { autoMigrate = true } = {},
): Promise<T> {
  const store = openStore(config.databaseUrl);
  try {
    if (autoMigrate && store.kind === 'sqlite') await store.migrate();
    return await work(store);
  } catch (error) {
    if (error instanceof ServiceUnavailableError) {
      throw new CommandFailed(describeFailure(error, describeDatabase(config.databaseUrl)), {
        cause: error,
      });
    }
    throw error;
  } finally {
    await store.close();
  }
}
