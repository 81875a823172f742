/**
 * `portcullis room create TITLE [--staff-only]`: the new room's id alone on stdout.
 *
 * @module
 */
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';

export async function createRoom(context: CommandContext): Promise<number> {
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
