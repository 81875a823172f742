/**
 * `portcullis token revoke (ID | --user NAME)`: revokes in the store, then tells running
 * gateways so that the sockets close.
 *
 * @module
 */
import { publishRevocation } from '../revocation.js';
import type { RevokedCredentials } from '../revocation.js';
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';
import { CommandFailed, describeFailure, UsageError } from './failures.js';

/** How often a gateway re-reads its live sessions' tokens: how late one without Redis notices. */
const RECHECK_SECONDS = 5;

export async function revokeTokens(context: CommandContext): Promise<number> {
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
        `note: without REDIS_URL, running gateways on this database close the revoked tokens' sockets within ${RECHECK_SECONDS} s (POST /api/auth/logout closes them at once)\n`,
      );
    }
  } catch (error) {
    const why = error instanceof Error ? describeFailure(error) : String(error);
    throw new CommandFailed(`revoked, but live sockets could not be closed: ${why}`);
  }
  return ExitCode.Ok;
}
