/**
 * `portcullis user create NAME [--staff] [--password-stdin]`.
 *
 * @module
 */
import { Accounts } from '../../auth/accounts.js';
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';
import { readPassword } from './passwords.js';

export async function createUser(context: CommandContext): Promise<number> {
  const { values, positionals } = context.parsed;
  const username = positionals[0] ?? '';
  const config = configFor(context);
  const password =
    values['password-stdin'] === true
      ? await readPassword(context.io.stdin, 'user create NAME')
      : undefined;
  const isStaff = values['staff'] === true;
  const user = await withStore(config, (store) =>
    new Accounts(store).createUser({
      username,
      isStaff,
      ...(password === undefined ? {} : { password }),
    }),
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
