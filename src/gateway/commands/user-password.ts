/**
 * `portcullis user password NAME [--password-stdin]`: sets a user's password, read from
 * stdin or generated. A generated one goes alone to stdout, shown once, so
 * `PW=$(portcullis user password alice)` captures it.
 *
 * @module
 */
import { Accounts } from '../../auth/accounts.js';
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';
import { CommandFailed } from './failures.js';
import { generatePassword, readPassword } from './passwords.js';

export async function setUserPassword(context: CommandContext): Promise<number> {
  const { values, positionals } = context.parsed;
  const username = positionals[0] ?? '';
  const config = configFor(context);
  const given =
    values['password-stdin'] === true
      ? await readPassword(context.io.stdin, 'user password NAME')
      : undefined;
  const password = given ?? generatePassword();
  await withStore(config, async (store) => {
    const user = await store.getUserByUsername(username);
    if (user === undefined || !(await new Accounts(store).setPassword(user.id, password))) {
      throw new CommandFailed(`no user named ${JSON.stringify(username)}`);
    }
  });
  const { stdout, stderr } = context.io;
  const name = JSON.stringify(username);
  // Tokens are separate credentials: a leaked password may have made some.
  const tokens = `its tokens stay valid (portcullis token revoke --user ${username} ends them)`;
  if (given === undefined) {
    stdout.write(`${password}\n`);
    stderr.write(`new password for ${name}, shown only once; ${tokens}\n`);
  } else {
    stdout.write(`changed the password of ${name}; ${tokens}\n`);
  }
  return ExitCode.Ok;
}
