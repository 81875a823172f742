/**
 * `portcullis migrate`: creates or upgrades the database schema.
 *
 * @module
 */
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';

export async function migrate(context: CommandContext): Promise<number> {
  const config = configFor(context);
  const applied = await withStore(config, (store) => store.migrate(), { autoMigrate: false });
  const { stdout } = context.io;
  if (applied.length === 0) stdout.write('database schema is up to date\n');
  for (const migration of applied) stdout.write(`applied ${migration}\n`);
  return ExitCode.Ok;
}
