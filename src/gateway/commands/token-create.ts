/**
 * `portcullis token create NAME [--ttl 30d] [--name LABEL]`: the token alone on stdout,
 * so `TOKEN=$(portcullis token create alice)` captures it; what a person reads to stderr.
 *
 * @module
 */
import { Accounts } from '../../auth/accounts.js';
import { DURATION_HINT, parseDuration } from '../durations.js';
import { configFor, ExitCode, withStore } from './command.js';
import type { CommandContext } from './command.js';
import { CommandFailed, UsageError } from './failures.js';

export async function createToken(context: CommandContext): Promise<number> {
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
    return new Accounts(store, { tokenTtlMs: config.tokenTtlMs }).createToken(user.id, {
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
